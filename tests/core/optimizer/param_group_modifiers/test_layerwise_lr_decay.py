import functools

import pytest
import torch

from noether.core.optimizer import LayerwiseLrDecayModifier, OptimizerWrapper
from noether.core.optimizer.param_group_modifiers.layerwise_lr_decay import (
    MATCH_PREVIOUS_GROUP,
    layer_ids_from_group_matcher,
)
from noether.core.schemas import OptimizerConfig, ParamGroupModifierConfig

KIND = "noether.core.optimizer.param_group_modifiers.LayerwiseLrDecayModifier"


class TinyViT(torch.nn.Module):
    def __init__(self, depth: int = 3) -> None:
        super().__init__()
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, 4))
        self.patch_embed = torch.nn.Linear(4, 4)
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(depth))
        self.norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(4, 2)


def expected_scales(model: torch.nn.Module, decay: float, num_layers: int) -> dict[str, float]:
    # Independent reference: timm's layer ids (stem 0, blocks.i -> i+1, rest num_layers+1).
    scales = {}
    for name, _ in model.named_parameters():
        if name.startswith("blocks."):
            layer_id = int(name.split(".")[1]) + 1
        elif name.startswith(("cls_token", "patch_embed")):
            layer_id = 0
        else:
            layer_id = num_layers + 1
        scales[name] = decay ** (num_layers + 1 - layer_id)
    return scales


def scales_of(modifier: LayerwiseLrDecayModifier, model: torch.nn.Module) -> dict[str, float]:
    return {n: modifier.get_properties(model, n, p).get("lr_scale", 1.0) for n, p in model.named_parameters()}


@pytest.mark.parametrize("decay", [0.75, 0.5])
def test_scales_follow_layer_ids(decay: float) -> None:
    model = TinyViT()
    modifier = LayerwiseLrDecayModifier(ParamGroupModifierConfig(kind=KIND, name="blocks", decay=decay))  # type: ignore[call-arg]
    assert scales_of(modifier, model) == pytest.approx(expected_scales(model, decay, 3))
    assert modifier.was_applied_successfully()


def test_num_layers_override_and_too_small() -> None:
    model = TinyViT()
    config = ParamGroupModifierConfig(kind=KIND, name="blocks", decay=0.5, num_layers=5)  # type: ignore[call-arg]
    assert scales_of(LayerwiseLrDecayModifier(config), model) == pytest.approx(expected_scales(model, 0.5, 5))
    small = ParamGroupModifierConfig(kind=KIND, name="blocks", decay=0.5, num_layers=2)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="num_layers=2"):
        scales_of(LayerwiseLrDecayModifier(small), model)


def test_unknown_container_is_not_applied() -> None:
    model = TinyViT()
    modifier = LayerwiseLrDecayModifier(ParamGroupModifierConfig(kind=KIND, name="layers", decay=0.5))  # type: ignore[call-arg]
    scales_of(modifier, model)
    assert not modifier.was_applied_successfully()


def test_through_the_wrapper_with_ddp_prefix_and_an_extra_lr_scale() -> None:
    class DDPLike(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = TinyViT(depth=2)

    model = DDPLike()
    config = OptimizerConfig(
        param_group_modifiers_config=[
            {"kind": KIND, "name": "blocks", "decay": 0.5},  # type: ignore[list-item]
            {"kind": "noether.core.optimizer.LrScaleByNameModifier", "name": "module.head.weight", "scale": 0.1},  # type: ignore[list-item]
        ]
    )
    wrapper = OptimizerWrapper(model, functools.partial(torch.optim.SGD, lr=1.0), config)
    lr_of = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in wrapper.torch_optim.param_groups:
        for p in group["params"]:
            lr_of[names[id(p)]] = group["lr"]
    assert lr_of["module.cls_token"] == pytest.approx(0.125)
    assert lr_of["module.blocks.0.weight"] == pytest.approx(0.25)
    assert lr_of["module.blocks.1.weight"] == pytest.approx(0.5)
    assert lr_of["module.norm.weight"] == 1.0
    assert lr_of["module.head.weight"] == pytest.approx(0.1)


# ---- layers given as patterns ------------------------------------------------------------------------------------


class EncoderDecoder(torch.nn.Module):
    """No group_matcher: two module lists, one of them nested (stages of blocks), a norm and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Linear(2, 2)
        self.encoder = torch.nn.Module()
        self.encoder.blocks = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(2))
        self.decoder = torch.nn.Module()
        self.decoder.stages = torch.nn.ModuleList(torch.nn.Module() for _ in range(2))
        for stage in self.decoder.stages:
            stage.blocks = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(2))
        self.norm = torch.nn.LayerNorm(2)
        self.head = torch.nn.Linear(2, 2)


def layerwise(**fields: object) -> LayerwiseLrDecayModifier:
    return LayerwiseLrDecayModifier(ParamGroupModifierConfig(kind=KIND, **fields))  # type: ignore[arg-type]


def test_several_lists_nested_names_and_a_list_entry_form_the_layers() -> None:
    model = EncoderDecoder()
    modifier = layerwise(decay=0.5, layers=["stem", "encoder.blocks.*", "decoder.stages.*.blocks.*", ["norm"]])
    # Written out by hand: stem 0, encoder blocks 1-2, decoder blocks 3-6 (stage-major), norm 7, head (unmatched) 8.
    layer_of_module = {
        "stem": 0,
        "encoder.blocks.0": 1,
        "encoder.blocks.1": 2,
        "decoder.stages.0.blocks.0": 3,
        "decoder.stages.0.blocks.1": 4,
        "decoder.stages.1.blocks.0": 5,
        "decoder.stages.1.blocks.1": 6,
        "norm": 7,
        "head": 8,
    }
    expected = {name: 0.5 ** (8 - layer_of_module[name.rsplit(".", 1)[0]]) for name, _ in model.named_parameters()}
    assert scales_of(modifier, model) == expected
    assert modifier.was_applied_successfully()


def test_globs_within_segments_and_the_first_matching_entry_wins() -> None:
    model = EncoderDecoder()
    # "*coder.*" would also match the encoder, but the encoder entry comes first; [stem, norm] form one layer.
    modifier = layerwise(decay=0.5, layers=[["st?m", "norm"], "enc*.blocks.*", "*coder.stages.*"])
    layer_of_prefix = {"stem": 0, "norm": 0, "encoder.blocks.0": 1, "encoder.blocks.1": 2}
    layer_of_prefix |= {"decoder.stages.0": 3, "decoder.stages.1": 4, "head": 5}
    expected = {}
    for name, _ in model.named_parameters():
        prefix = next(p for p in layer_of_prefix if name.startswith(p + "."))
        expected[name] = 0.5 ** (5 - layer_of_prefix[prefix])
    assert scales_of(modifier, model) == expected


def test_an_entry_that_matches_nothing_fails_the_wrapper_naming_it() -> None:
    config = OptimizerConfig(
        param_group_modifiers_config=[{"kind": KIND, "decay": 0.5, "layers": ["stem", "encoder.layers.*"]}]  # type: ignore[list-item]
    )
    with pytest.raises(ValueError, match=r"unmatched=\['encoder.layers.\*'\]"):
        OptimizerWrapper(EncoderDecoder(), functools.partial(torch.optim.SGD, lr=1.0), config)


def test_without_layers_or_name_a_model_needs_a_group_matcher() -> None:
    with pytest.raises(ValueError, match="no group_matcher"):
        scales_of(layerwise(decay=0.5), EncoderDecoder())


# ---- timm-style group matchers (the reference comparison with timm itself is in the _timm test module) ----------


def test_group_matcher_dict_numbers_groups_and_merges_into_the_previous_one() -> None:
    names = ["cls_token", "patch_embed.proj.weight", "blocks.0.w", "blocks.1.w", "blocks.10.w", "norm.weight", "head.w"]
    matcher = {
        "stem": r"^cls_token|patch_embed",
        "unused": None,
        "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (MATCH_PREVIOUS_GROUP,))],
    }
    # stem 0; blocks numerically (1, 2, 10 -> 1, 2, 3); norm joins block 10; head is unmatched and last.
    assert layer_ids_from_group_matcher(names, matcher) == {
        "cls_token": 0,
        "patch_embed.proj.weight": 0,
        "blocks.0.w": 1,
        "blocks.1.w": 2,
        "blocks.10.w": 3,
        "norm.weight": 3,
        "head.w": 4,
    }


def test_group_matcher_callable_gives_the_ordinals() -> None:
    ordinals = {"a": 5, "b": (1, 2), "c": (1, 1), "d": 5}
    assert layer_ids_from_group_matcher(list(ordinals), ordinals.__getitem__) == {"c": 0, "b": 1, "a": 2, "d": 2}


def test_beit_numbering_by_name_differs_from_timms_vit_grouping_only_for_the_final_norm() -> None:
    # timm's ViT matcher puts the final norm into the last block; naming the module list keeps BEiT's numbering.
    model = TinyViT(depth=3)
    matcher = {
        "stem": r"^cls_token|patch_embed",
        "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (MATCH_PREVIOUS_GROUP,))],
    }
    ids = layer_ids_from_group_matcher([n for n, _ in model.named_parameters()], matcher)
    timm_like = {name: 0.5 ** (max(ids.values()) - layer_id) for name, layer_id in ids.items()}
    by_name = scales_of(layerwise(name="blocks", decay=0.5), model)
    differing = {name for name in timm_like if timm_like[name] != by_name[name]}
    assert differing == {"norm.weight", "norm.bias"}
