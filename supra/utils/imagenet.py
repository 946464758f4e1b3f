"""ImageNet's per-channel statistics: the normalisation of the release's encoder and of any encoder
that does not bring its own (models read them for their defaults, the data pipeline applies them)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
