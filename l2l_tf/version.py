"""The library version, recorded in every trained optimizer so loaders can check compatibility."""
__version__ = "0.1.0"
