"""The version, in a leaf of its own: modules that report it need not import the package."""
__version__ = "0.1.0"
