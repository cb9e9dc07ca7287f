"""everbake: bake Everest-ready VM images for optimization models."""

__version__ = "0.1.0"
