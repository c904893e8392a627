"""Every drive task's tiny() config end to end (the shared test: tests/test_tasks.py)."""

import pytest

from tests.test_tasks import app_tasks, tiny_end_to_end


@pytest.mark.parametrize("task", app_tasks("drive"))
def test_task_tiny_end_to_end(tiny_runs, task):
    tiny_end_to_end(tiny_runs, "drive", task)
