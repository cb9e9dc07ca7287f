"""everest-runtime: runs one Everest task on a VM (standard library only, Python 3.8+)."""

__version__ = "0.1.0"
