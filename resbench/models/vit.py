"""A small timm ViT whose position embeddings timm resamples to each input's patch grid."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from resbench.errors import ResbenchError
from resbench.models.base import ModelConfig, ResModel, check_positive_int, policies
from resbench.models.registry import register_model

__all__ = ["ViTConfig", "ViT"]


@dataclasses.dataclass
class ViTConfig(ModelConfig):
    patch_size: int = 2  # 14 px -> 7x7 patches; inputs that are not a multiple are padded with their border
    embed_dim: int = 64
    depth: int = 4  # transformer blocks
    num_heads: int = 4  # must divide embed_dim
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1  # stochastic depth, growing block by block


@register_model("vit")
class ViT(ResModel):
    """timm VisionTransformer (class token) with dynamic_img_size: any input size, pos-embeds resampled."""

    config_class = ViTConfig
    LISTED_PARAMETERS = 204_298
    POLICIES = policies("resample the learned position embeddings (timm resample_abs_pos_embed, bicubic) to "
                        "the test patch grid; same patch size")

    def __init__(self, config: ViTConfig):
        from timm.models.vision_transformer import VisionTransformer  # timm loads only for this model

        super().__init__(config)
        for field in ("patch_size", "embed_dim", "depth", "num_heads"):
            check_positive_int(field, getattr(config, field))
        if config.embed_dim % config.num_heads:
            raise ResbenchError(f"vit num_heads={config.num_heads}: expected a divisor of embed_dim={config.embed_dim}")
        # dynamic_img_size: timm resamples pos_embed to the input's grid in every forward;
        # dynamic_img_pad: a side that is not a multiple of patch_size is padded, so 7 px inputs work.
        self.vit = VisionTransformer(img_size=self.train_size, patch_size=config.patch_size,
                                     in_chans=config.in_chans, num_classes=config.num_classes,
                                     embed_dim=config.embed_dim, depth=config.depth, num_heads=config.num_heads,
                                     mlp_ratio=config.mlp_ratio, drop_path_rate=config.drop_path_rate,
                                     dynamic_img_size=True, dynamic_img_pad=True)

    def pos_embed_grid(self, size: tuple[int, int]) -> tuple[int, int]:
        """Patch grid (gh, gw) that the position embeddings are resampled to for an input of `size`."""
        return tuple(self.vit.patch_embed.dynamic_feat_size(tuple(size)))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # A side that is not a multiple of the patch is padded at the bottom and right, as timm's
        # dynamic_img_pad does, but by repeating the border: timm pads 0, which in normalised space is the
        # dataset mean, not the background (about -0.8 for Fashion-MNIST), so the padded strip would read
        # as a grey bar the model never saw in training.
        p = self.config.patch_size
        pad_h, pad_w = (-x.shape[-2]) % p, (-x.shape[-1]) % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return self.vit(x)  # (B, num_classes)
