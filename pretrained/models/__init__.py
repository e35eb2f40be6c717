"""Model families, one file each; they register themselves with ``pretrained.models.auto``."""
