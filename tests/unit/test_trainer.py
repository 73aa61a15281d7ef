"""The train step's library (omnitrain/trainer.py): what a user reads when Omnipose's loop stops."""

from __future__ import annotations

import pytest

from omnitrain.trainer import limit_visible_gpus, omnipose_failure


def raised_through(*files_and_functions):
    """The exception raised by the last (file, function), each function called by the one before it."""
    namespace = {}
    source = (
        "def {name}(inner):\n"
        "    if inner:\n"
        "        inner()\n"  # line 3: the call
        "    raise ValueError('operands could not be broadcast together')\n"  # line 4: the raise
    )
    for filename, name in files_and_functions:
        exec(compile(source.format(name=name), filename, "exec"), namespace)  # noqa: S102 (their file names)
    call = None
    for _, name in reversed(files_and_functions):
        call = (lambda f, inner: lambda: f(inner))(namespace[name], call)
    with pytest.raises(ValueError) as info:
        call()
    return info.value


def test_an_error_in_omniposes_loop_is_one_message_with_version_epoch_and_omniposes_line():
    exc = raised_through(
        ("/env/site-packages/cellpose_omni/core.py", "_train_net"),
        ("/env/site-packages/omnipose/core.py", "random_crop_warp"),
    )
    message = omnipose_failure(exc, "3120fe83adce", 0, 10)
    first = message.splitlines()[0]
    assert first.startswith("Training of model version 3120fe83adce stopped in epoch 1 of 10: ValueError:")
    assert first.endswith("(raised at omnipose/core.py, line 4, in random_crop_warp)")
    assert "/env/" not in message and "fix: " in message and "Traceback" not in message


def test_an_error_of_the_pipelines_own_hook_names_it_and_the_omnipose_line_it_passed():
    exc = raised_through(
        ("/env/site-packages/cellpose_omni/core.py", "_train_net"),
        ("/repo/omnitrain/monitor.py", "score"),
    )
    message = omnipose_failure(exc, "3120fe83adce", None, 10)
    assert "stopped before its first epoch" in message
    assert (
        "raised at omnitrain/monitor.py, line 4, in score;"
        " in Omnipose's cellpose_omni/core.py, line 3, in _train_net" in message
    )


@pytest.mark.parametrize("epoch", [0, 9])
def test_the_epoch_is_counted_from_one(epoch):
    exc = raised_through(("/env/omnipose/core.py", "f"))
    assert f"in epoch {epoch + 1} of 10" in omnipose_failure(exc, "v", epoch, 10)


def test_a_cpu_training_with_gpu_sized_settings_gets_a_note_pointing_to_the_cpu_recipe():
    from omnitrain.trainer import cpu_note

    defaults = {"tyx": None, "dim": 2, "training": {"symmetry": True}}
    assert "config/cpu.yaml" in cpu_note(defaults, gpu=False)
    assert cpu_note(defaults, gpu=True) is None
    assert cpu_note({**defaults, "tyx": [64, 64]}, gpu=False) is None
    assert cpu_note({**defaults, "training": {"symmetry": False}}, gpu=False) is None
    assert cpu_note({**defaults, "dim": 3}, gpu=False) is None


@pytest.mark.parametrize(
    ("before", "count", "after"),
    [(None, 1, "0"), (None, 2, "0,1"), ("3,5,7", 1, "3"), ("3, 5,7", 2, "3,5"), ("", 1, "")],
    ids=["unset", "unset-two", "slurm-one", "slurm-two", "none-visible"],
)
def test_a_training_sees_the_gpus_it_holds_and_no_other(before, count, after):
    environ = {} if before is None else {"CUDA_VISIBLE_DEVICES": before}
    assert limit_visible_gpus(count, environ) == after == environ["CUDA_VISIBLE_DEVICES"]
