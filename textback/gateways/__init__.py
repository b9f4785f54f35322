"""SMS gateway adapters, chosen by ``[gateway] kind`` in the TOML."""
