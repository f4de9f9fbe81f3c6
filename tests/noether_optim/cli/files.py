"""Config files with one mistake each (and a model module), written into a test's folder."""

from pathlib import Path

MODEL = """import torch

def build():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 1))
    model.pos_embed = torch.nn.Parameter(torch.zeros(8))
    return model
"""
FILES: dict[str, str | bytes] = {
    "models.py": MODEL,
    "eps.yaml": (
        "kind: torch.optim.AdamW\nlr: 1e-3\neps: 1e-8\nweight_decay: 5e-2\nclip_grad_norm: 1.0\nschedule_config:\n"
        "  kind: noether.core.schedules.LinearWarmupCosineDecaySchedule\n  warmup_percent: 0.1\n"
    ),
    "typo.yaml": (
        "kind: torch.optim.AdamW\nlr: 1.0e-3\nweight_decya: 0.2\nschedule_config:\n"
        "  kind: noether.core.schedules.LinearWarmupCosineDecaySchedule\n  warmup_steps: 2\n"
    ),
    "loin.yaml": "kind: noether.core.optimizer.Loin\nlr: 1.0e-3\n",
    "modifier_kind.yaml": (
        "kind: torch.optim.AdamW\nlr: 1.0e-3\nparam_group_modifiers_config:\n"
        "  - kind: noether.core.optimizer.param_group_modifiers.WeightDecayByNameModifer\n    name: pos_embed\n"
        "    value: 0.0\n"
    ),
    "betas.yaml": "kind: noether.core.optimizer.Lion\nlr: 1.0e-3\nbetas: [1.5, 0.9]\n",
    "no_max.yaml": "kind: noether.core.schedules.LinearWarmupCosineDecaySchedule\nwarmup_steps: 2\n",
    "inf.yaml": "kind: noether.core.schedules.LinearWarmupCosineDecaySchedule\nwarmup_steps: 2\nmax_value: .inf\n",
    "deep.yaml": "kind: torch.optim.AdamW\nlr: 1.0e-3\nfoo: " + "[" * 3000 + "]" * 3000 + "\n",
    "latin1.yaml": "kind: torch.optim.AdamW\n# café\nlr: 1.0e-3\n".encode("latin-1"),
    "unmatched.yaml": (
        "kind: torch.optim.AdamW\nlr: 1.0e-3\nparam_group_modifiers_config:\n"
        "  - kind: noether.core.optimizer.param_group_modifiers.WeightDecayByNameModifier\n    name: pos_embd\n"
        "    value: 0.0\n"
    ),
    "blocked/matplotlib/__init__.py": "raise ImportError('No module named matplotlib (blocked by the test)')\n",
}


def write_files(folder: Path) -> None:
    """Write every file of :data:`FILES` under ``folder``."""
    for name, content in FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
