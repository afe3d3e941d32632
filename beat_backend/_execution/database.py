"""``DBExecutor``: serves database views to an algorithm process (spec §8.4)."""

from __future__ import annotations

import json
import os

from .._assets.database import Database
from .._core.names import confined_path


class DBExecutor:
    """Executor specialised in database views.

    ``channel`` (keyword only, with ``message_handler=None``): serve the views
    over this :class:`~beat_backend._transport.channel.Channel` through a new
    ``MessageHandler(None, channel=channel)``.
    """

    def __init__(
        self,
        message_handler,
        prefix,
        cache_root,
        data,
        dataformat_cache=None,
        database_cache=None,
        *,
        channel=None,
    ):
        if channel is not None:
            if message_handler is not None:
                raise ValueError("DBExecutor: give a message handler or a channel, not both")
            from .messagehandlers import MessageHandler  # (ZeroMQ: only when needed)

            message_handler = MessageHandler(None, channel=channel)
        self.message_handler = message_handler
        self.prefix = prefix
        self.cache = cache_root
        self.errors = []
        self.databases = {}
        self.views = {}
        self.data_sources = {}
        self.input_list = None
        dataformat_cache = {} if dataformat_cache is None else dataformat_cache
        database_cache = {} if database_cache is None else database_cache

        if isinstance(data, dict):
            self.data = data
        else:
            if not os.path.exists(data):
                self.data = None
                self.errors.append(f"File not found: {data}")
                return
            with open(data, encoding="utf-8") as f:
                self.data = json.load(f)

        main_channel = self.data.get("channel")
        for name, details in self.data["inputs"].items():
            if "database" not in details:
                continue
            db_name = details["database"]
            db = database_cache.get(db_name)
            if db is None:
                db = Database(prefix, db_name, dataformat_cache)
                database_cache[db_name] = db
            self.databases[db_name] = db
            if not db.valid:
                self.errors.extend(db.errors)
                continue
            key = (db_name, details["protocol"], details["set"])
            view = self.views.get(key)
            if view is None:
                view = db.view(details["protocol"], details["set"])
                start_index = end_index = None
                if details.get("channel") == main_channel and self.data.get("range"):
                    start_index, end_index = self.data["range"]
                view.setup(
                    confined_path(cache_root, details["path"], "database index path"),
                    start_index=start_index,
                    end_index=end_index,
                    pack=True,
                )
                self.views[key] = view
            self.data_sources[name] = view.data_sources[details["output"]]

        if self.message_handler is not None:
            self.message_handler.set_data_sources(self.data_sources)

    def process(self):
        """Start the message handler."""
        self.message_handler.start()

    def wait(self):
        """Wait for the message handler to finish."""
        self.message_handler.join()

    @property
    def address(self):
        return self.message_handler.address

    @property
    def valid(self):
        return not self.errors

    def __str__(self):
        return json.dumps(self.data, indent=4)
