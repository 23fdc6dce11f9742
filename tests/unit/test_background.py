"""BackgroundJob: one run at a time, off the caller's thread, its status readable meanwhile."""
import threading

from covidqa.runtime.background import BackgroundJob


def test_a_job_runs_in_the_background_one_at_a_time_and_reports_its_result():
    job, release = BackgroundJob('test'), threading.Event()
    assert job.status() == {'state': 'idle'}
    assert job.start(lambda: release.wait(10) and {'steps': 3})
    assert job.running() and job.status()['state'] == 'running'
    assert not job.start(lambda: {'steps': 0})  # a run is going
    release.set()
    assert job.wait(10)
    status = job.status()
    assert status['state'] == 'done' and status['result'] == {'steps': 3} and status['seconds'] >= 0


def test_a_failed_job_reports_the_error_and_a_new_run_can_start():
    job = BackgroundJob('test')
    assert job.start(lambda: 1 / 0) and job.wait(10)
    assert job.status()['state'] == 'failed' and 'ZeroDivisionError' in job.status()['error']
    assert isinstance(job.exception(), ZeroDivisionError)
    assert job.start(lambda: 'ok') and job.wait(10) and job.status()['result'] == 'ok'
