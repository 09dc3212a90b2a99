"""Training: one loop (``loop``) shared by pretraining (``pretrain``) and task fine-tuning
(``finetune``), with the checks that refuse a run before it starts (``checks``).

Inference (evaluation, ``goalrl command``, ``goalrl serve``) never imports this package: it
builds agents from checkpoints with ``goalrl.agents.registry``.
"""

from goalrl.training.checks import TrainingError
from goalrl.training.finetune import FinetuneConfig, finetune
from goalrl.training.pretrain import PretrainConfig, pretrain

__all__ = ["FinetuneConfig", "PretrainConfig", "TrainingError", "finetune", "pretrain"]
