"""The toolboxes' own tools start on the environment the setup builds: every
module they import is installed (pyproject.toml lists what the OpenMMLab
packages import without declaring it)."""
import os.path as osp
import subprocess
import sys

import mmdet
import mmseg
import pytest

TOOLS = {  # the stock tools that failed at import before their modules were declared
    'mmdet benchmark': osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'analysis_tools', 'benchmark.py'),
    'mmdet analyze_logs': osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'analysis_tools', 'analyze_logs.py'),
    'mmseg analyze_logs': osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'analysis_tools', 'analyze_logs.py'),
}


@pytest.mark.parametrize('tool', TOOLS)
def test_stock_tool_imports_everything_it_needs(tool):
    result = subprocess.run([sys.executable, TOOLS[tool], '--help'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-1500:]
    assert 'usage:' in result.stdout
