"""One run per model across processes: a second process training or resuming the same model is
refused, naming the process that holds it; a cancelled run (SIGTERM) keeps its checkpoint."""

from __future__ import annotations

import signal
import subprocess
import sys

from faults_helpers import (
    EPOCHS,
    checkpoint_position,
    logged_epochs,
    start_training,
    status,
    the_run,
    train,
    training_env,
    TRAIN_ARGS,
    wait_for,
)


def test_a_second_process_is_refused_and_two_resumes_never_interleave(taller_home):
    first = start_training(taller_home, interval=0.3, step_pause=0.2)  # trains for 20 s unless stopped
    run_dir = wait_for(lambda: the_run(taller_home), "the run folder", first)
    wait_for(lambda: (run_dir / "last.pt").is_file(), "the first checkpoint", first)

    second = train(taller_home)
    assert second.returncode == 3, second.stderr
    assert (f"autoencoder is already training in another process (pid {first.pid}, run {run_dir.name})"
            in second.stderr), second.stderr
    assert "Traceback" not in second.stderr and the_run(taller_home) == run_dir  # no second run folder

    # SIGTERM (what `cancel` from another process sends) stops at the next step with a checkpoint.
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 1 and "cancelled" in err
    assert status(run_dir)["state"] == "cancelled"
    epoch, step = checkpoint_position(run_dir)
    assert (status(run_dir)["epoch"], status(run_dir)["step"]) == (epoch, step)

    # Two resumes of that run at once: one continues it, the other is refused.
    command = [sys.executable, "-m", "taller.trainers.autoencoder", *TRAIN_ARGS, "--resume"]
    env = training_env(taller_home, interval=0.3, step_pause=0.08)  # the winner trains for seconds
    resumes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outcomes = sorted((process.wait(timeout=180), process.communicate()[1]) for process in resumes)
    (code_ok, err_ok), (code_refused, err_refused) = outcomes
    assert code_ok == 0, err_ok[-3000:]
    assert code_refused == 3 and "already training in another process" in err_refused, err_refused[-3000:]
    assert f"resumed run {run_dir.name}" in err_ok
    assert logged_epochs(run_dir) == list(range(1, EPOCHS + 1))  # no interleaved or repeated epochs
    assert status(run_dir)["state"] == "finished"
