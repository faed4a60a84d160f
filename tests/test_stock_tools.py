"""The toolboxes' own tools start on the environment the setup builds: every
module they import is installed (pyproject.toml lists what the OpenMMLab
packages import without declaring it)."""
import json
import os.path as osp
import re
import subprocess
import sys
from pathlib import Path

import mmdet
import mmpretrain
import mmseg
import pytest
from helpers import REPO

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


# The stock tools run one after another in one process (each as `python TOOL ARGS` would, through runpy), so that
# the stack is imported once: a child process per tool costs 5-10 s of imports each. Unbuffered, with stderr merged
# into stdout, each command's output is the text between its marker and the next.
IN_ONE_PROCESS = r'''
import json, runpy, sys
commands, results = json.loads(sys.argv[1]), []
for index, argv in enumerate(commands):
    print(f'\n=== command {index}: {argv[0]}')  # on a line of its own after a progress bar's last one
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name='__main__')
        results.append('ok')
    except SystemExit as exit:
        results.append('ok' if exit.code in (0, None) else f'exit {exit.code}')
    except Exception as err:
        results.append(f'{type(err).__name__}: {err}')
print('\n=== RESULTS ' + json.dumps(results))
'''


def run_stock_tools(commands: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """``{name: argv}`` run in order in one child process; returns ``{name: (outcome, output)}``,
    the outcome being 'ok', 'exit N' or the exception that ended the command."""
    result = subprocess.run([sys.executable, '-u', '-c', IN_ONE_PROCESS, json.dumps(list(commands.values()))],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=800)
    assert '=== RESULTS ' in result.stdout, result.stdout[-3000:]
    output, results = result.stdout.rsplit('=== RESULTS ', 1)
    results = results.split('\n', 1)[0]  # whatever the interpreter writes as it exits follows
    outputs = re.split(r'^=== command \d+: .*$', output, flags=re.MULTILINE)[1:]
    assert len(outputs) == len(commands), output[-3000:]
    return dict(zip(commands, zip(json.loads(results), outputs)))


@pytest.fixture(scope='module')
def stock_runs(pristine, tmp_path_factory) -> tuple[dict[str, tuple[str, str]], Path]:
    """The stock tools of docs/stock_tools.md on the demo configs, all in one process: mmpretrain's and mmdet's
    and mmseg's train (and --resume) and test, the toolboxes' Python APIs, publish_model, print_config,
    browse_dataset and get_flops. Returns their outcomes and the folder they wrote into."""
    from efficientvit_dense.apps.demo import DEMOS
    from efficientvit_dense.apps.synthetic import SyntheticSpec, generate
    tmp_path = tmp_path_factory.mktemp('stock')
    tool = {package: osp.join(osp.dirname(module.__file__), '.mim', 'tools')
            for package, module in (('mmdet', mmdet), ('mmseg', mmseg), ('mmpretrain', mmpretrain))}
    seg, det, cls = (DEMOS[task].config for task in ('segmentation', 'detection', 'classification'))
    data = f'{pristine}/'
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    in_process = [f'{loader}.{key}' for loader in loaders for key in ('num_workers=0', 'persistent_workers=False')]
    on_pristine = [f'{loader}.dataset.data_root={data}' for loader in loaders]

    # The classification demo states its class count, so mmpretrain's train.py and test.py run it as they are
    # (they cannot count folders); more validation crops than the tiny dataset has.
    generate(str(tmp_path / 'cls_data'), SyntheticSpec(num_train=12, num_val=12, max_objects=5, image_size=96))
    cls_options = ['--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                   'default_hooks.checkpoint.interval=1', *in_process,
                   *(f'{loader}.{key}' for loader in loaders for key in (
                       f'dataset.data_root={tmp_path / "cls_data"}/', 'batch_size=8'))]
    seg_options = ['--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                   'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2', *in_process, *on_pristine]
    ann_file = f'{data}annotations/instances_val.json'
    det_options = ['--cfg-options', *in_process, *on_pristine, f'val_evaluator.ann_file={ann_file}',
                   f'test_evaluator.ann_file={ann_file}']
    det_train = [*det_options, 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
                 'train_dataloader.batch_size=2']
    seg_run, det_run = tmp_path / 'seg_run', str(tmp_path / 'det_run')
    image = next((pristine / 'val').glob('*.jpg'))
    # The Python APIs a user of each toolbox calls, on our configs and checkpoints. The classifier's comes first:
    # a default scope the other toolboxes' tools leave current in this one process would resolve its transforms.
    classifier_api, segmentor_api = tmp_path / 'classifier_api.py', tmp_path / 'segmentor_api.py'
    classifier_api.write_text(f'''
from mmpretrain import ImageClassificationInferencer
scores = ImageClassificationInferencer({cls!r}, device='cpu')({str(image)!r})[0]['pred_scores']
assert scores.shape == (6,), scores.shape
''')
    segmentor_api.write_text(f'''
from mmseg.apis import inference_model, init_model
segmentor = init_model({seg!r}, {str(seg_run / 'iter_4.pth')!r}, device='cpu')
assert inference_model(segmentor, {str(image)!r}).pred_sem_seg.data.shape[-2:] == (192, 192)
''')
    commands = {
        'mmpretrain ImageClassificationInferencer': [str(classifier_api)],
        'mmpretrain train': [f'{tool["mmpretrain"]}/train.py', cls, '--work-dir', str(tmp_path / 'cls_run'),
                             *cls_options],
        'mmpretrain test': [f'{tool["mmpretrain"]}/test.py', cls, str(tmp_path / 'cls_run' / 'epoch_1.pth'),
                            '--work-dir', str(tmp_path / 'cls_test'), *cls_options],
        'mmseg train': [f'{tool["mmseg"]}/train.py', seg, '--work-dir', str(seg_run), *seg_options],
        'mmseg train --resume': [f'{tool["mmseg"]}/train.py', seg, '--work-dir', str(seg_run), '--resume',
                                 *seg_options, 'train_cfg.max_iters=4'],
        'mmseg test': [f'{tool["mmseg"]}/test.py', seg, str(seg_run / 'iter_4.pth'), '--work-dir',
                       str(tmp_path / 'seg_test'), *seg_options],
        'mmseg init_model, inference_model': [str(segmentor_api)],
        'mmdet train': [f'{tool["mmdet"]}/train.py', det, '--work-dir', det_run, *det_train, 'train_cfg.max_iters=2'],
        'mmdet train --resume': [f'{tool["mmdet"]}/train.py', det, '--work-dir', det_run, '--resume', *det_train,
                                 'train_cfg.max_iters=4'],
        'mmdet test': [f'{tool["mmdet"]}/test.py', det, osp.join(det_run, 'iter_4.pth'), '--work-dir',
                       str(tmp_path / 'det_test'), *det_train,
                       'model.test_cfg.score_thr=0.0'],  # two iterations score below the default
        'mmdet publish_model': [f'{tool["mmdet"]}/model_converters/publish_model.py', str(seg_run / 'iter_4.pth'),
                                str(tmp_path / 'published.pth')],
        'mmdet print_config': [f'{tool["mmdet"]}/misc/print_config.py', det],
        'mmdet browse_dataset': [f'{tool["mmdet"]}/analysis_tools/browse_dataset.py', det, '--not-show',
                                 '--output-dir', str(tmp_path / 'browse'), *det_options],
        'mmdet get_flops': [f'{tool["mmdet"]}/analysis_tools/get_flops.py', det, '--num-images', '2', *det_options],
        'mmpretrain get_flops': [f'{tool["mmpretrain"]}/analysis_tools/get_flops.py', cls, '--shape', '96', '96'],
        'mmseg get_flops': [f'{tool["mmseg"]}/analysis_tools/get_flops.py', seg, '--shape', '96', '128'],
    }
    return run_stock_tools(commands), tmp_path


def _succeeded(runs, *names) -> str:
    """The output of the commands ``names``, each of which must have succeeded."""
    for name in names:
        assert runs[name][0] == 'ok', (name, runs[name][0], runs[name][1][-3000:])
    return ''.join(runs[name][1] for name in names)


def test_mmpretrains_own_tools_train_and_test_the_classification_demo(stock_runs):
    runs, _ = stock_runs
    _succeeded(runs, 'mmpretrain train')
    assert 'accuracy/top1' in _succeeded(runs, 'mmpretrain test')


def test_mmdets_own_tools_train_resume_and_test_the_detection_demo(stock_runs):
    runs, _ = stock_runs
    _succeeded(runs, 'mmdet train')
    assert 'resumed epoch: 0, iter: 2' in _succeeded(runs, 'mmdet train --resume')
    assert 'coco/bbox_mAP' in _succeeded(runs, 'mmdet test')


def test_the_stock_tools_the_docs_page_lists_work_on_the_demo_configs(stock_runs):
    """The rows of docs/stock_tools.md beyond train/test of mmdet and
    mmpretrain: mmseg's train, --resume and test, its init_model and
    inference_model and mmpretrain's ImageClassificationInferencer on our
    configs, publish_model on what mmseg wrote,
    print_config, browse_dataset, mmdet's and mmpretrain's get_flops; and
    mmseg 1.2.2's get_flops still broken upstream (the page says what to use
    instead; this fails once a new mmseg fixes it, so the page is updated)."""
    runs, tmp_path = stock_runs
    _succeeded(runs, 'mmpretrain ImageClassificationInferencer', 'mmseg train', 'mmseg init_model, inference_model',
               'mmdet print_config')
    assert 'resumed epoch: 0, iter: 2' in _succeeded(runs, 'mmseg train --resume')
    assert 'mIoU' in _succeeded(runs, 'mmseg test')
    assert 'published' in _succeeded(runs, 'mmdet publish_model') and list(tmp_path.glob('published-*.pth')), \
        'publish_model names its output'
    _succeeded(runs, 'mmdet browse_dataset')
    assert len(list((tmp_path / 'browse').iterdir())) == 8  # every training image of the tiny dataset, drawn
    assert 'Flops:' in _succeeded(runs, 'mmdet get_flops') and 'Flops:' in _succeeded(runs, 'mmpretrain get_flops')
    broken = runs['mmseg get_flops'][0]
    assert broken == 'ValueError: "input_shape" and "inputs" cannot be both set.', broken
