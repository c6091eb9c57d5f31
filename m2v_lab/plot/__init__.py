"""Figures drawn from m2v_lab results: each function draws on a given ``ax`` (or a new one) and returns it."""

from .features import feature_image

__all__ = ["feature_image"]
