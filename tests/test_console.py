"""What a run shows on the console: the lines a person acts on and the
progress; the log file keeps every line."""
import io
import logging

from mmengine.logging import MMLogger

from efficientvit_dense.engine.runner import readable_console


def test_the_console_leaves_out_lines_no_one_acts_on_and_the_log_file_keeps_them(tmp_path):
    logger = MMLogger.get_instance('console-test', log_file=str(tmp_path / 'run.log'))
    console = io.StringIO()
    (stream,) = [h for h in logger.handlers if not isinstance(h, logging.FileHandler)]
    stream.setStream(console)
    readable_console(logger)
    readable_console(logger)  # twice (a test after a train in one process): one filter
    logger.info('\n' + '-' * 60 + '\nSystem environment:\n    sys.platform: linux')
    logger.info('Config:\nauto_scale_lr = dict(base_batch_size=8, enable=False)')
    logger.info('paramwise_options -- backbone.stages.0.blocks.0.dw0.m.conv.weight:lr=0.002')
    logger.warning('Reach the end of the dataloader, it will be restarted and continue to iterate. It is '
                   'recommended to use `mmengine.dataset.InfiniteSampler` to enable the dataloader to iterate '
                   'infinitely.')
    logger.info('Iter(train) [  50/1100]  lr: 2.0000e-03  eta: 0:05:25  loss: 1.2435')
    logger.warning('The data root moved: a line someone acts on')
    shown = console.getvalue()
    assert 'Iter(train)' in shown and 'a line someone acts on' in shown
    assert not any(line in shown for line in ('System environment', 'auto_scale_lr', 'paramwise_options',
                                              'Reach the end'))
    for handler in logger.handlers:
        handler.flush()
    written = (tmp_path / 'run.log').read_text()
    assert all(line in written for line in ('System environment', 'auto_scale_lr', 'paramwise_options',
                                            'Reach the end', 'Iter(train)', 'acts on'))
    assert sum(type(f).__name__ == 'FileOnly' for f in stream.filters) == 1


def test_every_tool_answers_help_and_argument_errors_before_the_stack_loads():
    """tools/*.py --help, and a missing argument, in one process: each
    prints its usage, and none of the OpenMMLab model zoos (seconds to
    import) has been imported by then. A user sees --help in about a second."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from helpers import REPO
    script = r'''
import glob, json, runpy, sys
heavy = ('mmdet.models', 'mmseg.models', 'mmpretrain.models', 'onnxruntime', 'timm')
outcome = {}
for tool in sorted(glob.glob('tools/*.py')):
    for argv in ([tool, '--help'], [tool, '--no-such-option']):
        sys.argv = argv
        try:
            runpy.run_path(tool, run_name='__main__')
            code = 'returned'
        except SystemExit as exit:
            code = exit.code
        outcome[' '.join(argv)] = [code, sorted(m for m in heavy if m in sys.modules)]
print('OUTCOME ' + json.dumps(outcome))
'''
    result = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True, text=True, timeout=300)
    outcome = json.loads(result.stdout.split('OUTCOME ')[-1])
    tools = sorted(p.name for p in Path(REPO, 'tools').glob('*.py'))
    assert len(outcome) == 2 * len(tools) and tools
    assert outcome == {**{f'tools/{t} --help': [0, []] for t in tools},
                       **{f'tools/{t} --no-such-option': [2, []] for t in tools}}, result.stderr[-2000:]
    assert result.stdout.count('usage:') == len(tools)
