"""Format layer: type table, class compilation, casting and pure pack/unpack."""
