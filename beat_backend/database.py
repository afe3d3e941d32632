"""Validation of databases, view runners and the view tester (BEAT ``database``)."""

from ._assets.database import Database, Storage, View
from ._dataflow.dbtester import DatabaseTester
from ._dataflow.viewrunner import Runner

__all__ = ["Storage", "Runner", "Database", "View", "DatabaseTester"]

for _cls in (Storage, Runner, Database, View, DatabaseTester):
    _cls.__module__ = __name__
del _cls
