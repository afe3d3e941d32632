"""Various functions for hashing platform contributions and others (BEAT ``hash``)."""

from ._core.hashing import (
    _compact,
    _sha256,
    _stringify,
    hash,
    hashAnalyzer,
    hashBlockOutput,
    hashDataset,
    hashFileContents,
    hashJSON,
    hashJSONFile,
    hashJSONStr,
    toPath,
    toUserPath,
)

__all__ = [
    "toPath",
    "toUserPath",
    "hash",
    "hashJSON",
    "hashJSONFile",
    "hashFileContents",
    "hashDataset",
    # platform-side hashes (prefix-and-hashing.md §3.8)
    "hashBlockOutput",
    "hashAnalyzer",
    "hashJSONStr",
    # private helpers the platform imports (platform-client.md §4)
    "_compact",
    "_sha256",
    "_stringify",
]
