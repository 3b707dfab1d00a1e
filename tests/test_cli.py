"""CLI argument handling and error paths (no model runs)."""

import importlib

import pytest

from xlmr_dynamics import cli, sharding
from xlmr_dynamics.config import load_config


@pytest.mark.parametrize("argv, bad", [
    (["report", "{tmp}", "--treshold", "0.5"], "--treshold 0.5"),
    (["convert", "a", "b", "--config.seeds=1"], "--config.seeds=1"),
    (["sweep", "--config", "default", "--config.seeds", "3"], "--config.seeds 3"),
    (["sweep", "--config", "default", "--config.seeds=0", "1"], "1"),
    (["probe", "--checkpoint", "c", "--task", "pos", "--train-lang", "en", "--eval_langs=fr"], "--eval_langs=fr"),
])
def test_unknown_arguments_are_rejected_by_name(argv, bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([a.format(tmp=tmp_path) for a in argv])
    assert e.value.code == 2
    assert f"error: unrecognized arguments: {bad}\n" in capsys.readouterr().err


def _user_error_classes():
    return [FileNotFoundError] + [getattr(importlib.import_module(m), n)
                                  for m, names in cli.USER_ERRORS.items() for n in names]


@pytest.mark.parametrize("error", _user_error_classes(), ids=lambda c: c.__name__)
def test_user_errors_print_one_line_and_exit_2(error, tmp_path, monkeypatch, capsys):
    def fail(args, overrides):
        raise error("boom")

    monkeypatch.setattr(cli, "_cmd_report", fail)
    assert cli.main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "xlmr-dynamics report: error: boom\n"


def test_bugs_keep_their_traceback(tmp_path, monkeypatch):
    def fail(args, overrides):
        raise KeyError("bug")

    monkeypatch.setattr(cli, "_cmd_report", fail)
    with pytest.raises(KeyError):
        cli.main(["report", str(tmp_path)])


@pytest.mark.parametrize("argv, message", [
    (["report", "{tmp}/missing"], "xlmr-dynamics report: error: results dir"),
    (["sweep", "--config", "default:x"], "xlmr-dynamics sweep: error: "),
    (["sweep", "--config", "demo:cj"], "known: ci"),
    (["sweep", "--config", "default", "--config.seeds=0 x"], "element 'x' is not int"),
    (["pretrain", "--config", "no_such_config"], "xlmr-dynamics pretrain: error: config 'no_such_config' not found"),
])
def test_real_user_errors_exit_2_without_traceback(argv, message, tmp_path, capsys):
    assert cli.main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


class _Stop(Exception):
    pass


@pytest.mark.parametrize("flags, expected", [
    ([], ("h:1234", 2, 1)),
    (["--coordinator-address", "f:9", "--num-processes", "4", "--process-id", "0"], ("f:9", 4, 0)),
    (["--process-id", "-1"], ("h:1234", 2, None)),
])
def test_distributed_flags_fall_back_to_the_config(flags, expected, monkeypatch):
    calls = []

    def init(*args):
        calls.append(args)
        raise _Stop

    monkeypatch.setattr(sharding, "init_distributed", init)
    with pytest.raises(_Stop):
        cli.main(["sweep", "--config", "default", "--config.distributed.coordinator_address=h:1234",
                  "--config.distributed.num_processes=2", "--config.distributed.process_id=1", *flags])
    assert calls == [expected]


def test_distributed_unset_everywhere_is_auto():
    args = cli.build_parser().parse_args(["pretrain"])
    assert cli._distributed_settings(args, load_config("default")) == (None, None, None)
    assert cli._distributed_settings(args, load_config("demo")) == (None, None, None)  # no distributed section
