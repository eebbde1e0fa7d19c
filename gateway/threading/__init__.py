"""Thread tokens, Message-ID matching and the routing decision."""
