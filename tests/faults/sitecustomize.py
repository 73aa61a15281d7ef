"""Fault injection for tests/kills.py: Python imports this module at start-up in every process of a test's
snakemake run (its folder is on PYTHONPATH), and it does nothing unless OMNITRAIN_TEST_KILL names the rule
whose script this process runs. Then it kills the job with SIGKILL, as `kill -9` or a crash would:

- OMNITRAIN_TEST_KILL: the rules whose first job is killed (comma-separated; a rule's script has its name);
- OMNITRAIN_TEST_KILL_HOW: "<who>:<when>"; who is "job" (the job alone: Snakemake sees it fail) or "run" (the
  job's whole process group: Snakemake and every job, a crash); when is "exit" (after the script wrote all its
  outputs, before Snakemake hears of it) or "commit" (just after its first rename, a folder or file moved into
  place, or at exit when it renames nothing);
- OMNITRAIN_TEST_KILL_MARKER: a file made by the one process that kills (one kill a run), naming the rule.

Nothing in the pipeline knows of this: the kill comes from outside its code, as a real one would."""

import os
import sys

_rules = [r for r in os.environ.get("OMNITRAIN_TEST_KILL", "").split(",") if r]
# Snakemake runs a rule's script as .snakemake/scripts/tmp<random>.<script name>.py
_script = os.path.basename(sys.argv[0]) if sys.argv and "/.snakemake/scripts/" in sys.argv[0] else ""
_rule = next((r for r in _rules if _script.endswith(f".{r}.py")), None)

if _rule is not None:
    import atexit
    import signal

    _who, _, _when = os.environ.get("OMNITRAIN_TEST_KILL_HOW", "job:exit").partition(":")

    def _kill() -> None:
        try:
            fd = os.open(os.environ["OMNITRAIN_TEST_KILL_MARKER"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:  # another job was killed in this run
            return
        os.write(fd, f"{_rule} {_who}:{_when}\n".encode())
        os.close(fd)
        if _who == "run":
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    atexit.register(_kill)
    if _when == "commit":

        def _then_kill(move):
            def moved(*args, **kwargs):
                done = move(*args, **kwargs)
                _kill()
                return done

            return moved

        os.rename, os.replace = _then_kill(os.rename), _then_kill(os.replace)
