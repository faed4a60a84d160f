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
