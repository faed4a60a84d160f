"""The authors' released detectors (RetinaNet-M4, Mask R-CNN-M4) in their own
layout work wherever a checkpoint is accepted, and a checkpoint that leaves
part of a model at random is refused instead of evaluated.

The release's files are made here from our own models, as the authors'
downstream code (mmdet 2.x, mmcv 1.x) saves them: official backbone names,
persistent index buffers, an mmcv-1 meta and an optimizer entry."""
import os.path as osp
import pickle
import runpy
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import REPO, run_tool_in_process
from mmdet.registry import MODELS
from mmengine.registry import DefaultScope

from efficientvit_dense.analysis.reference import randomize_, release_detector_checkpoint
from efficientvit_dense.apps.synthetic import CLASSES, SyntheticSpec, generate
from efficientvit_dense.engine.checkpoint_fit import check_checkpoint_fits
from efficientvit_dense.engine.config import load_config
from efficientvit_dense.engine.runner import test as evaluate
from efficientvit_dense.engine.runner import train
from efficientvit_dense.errors import CheckpointError
from efficientvit_dense.models import EfficientViT
from efficientvit_dense.models.weights import resize_bias_table

RETINANET = osp.join(REPO, 'configs', 'retinanet_efficientvit_m4_coco.py')
MASK_RCNN = osp.join(REPO, 'configs', 'mask_rcnn_efficientvit_m4_coco.py')
NUM_VAL = 3


def synthetic_options(config: str, data_root: str, num_classes: int = len(CLASSES)) -> dict:
    """Flat --cfg-options that run a COCO config on the synthetic data, small and fast."""
    heads = (['model.bbox_head'] if 'retinanet' in config else
             ['model.roi_head.bbox_head', 'model.roi_head.mask_head'])
    options = {f'{head}.num_classes': num_classes for head in heads}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options.update({f'{loader}.dataset.ann_file': 'annotations/instances_val.json',
                        f'{loader}.dataset.data_prefix.img': 'val/', f'{loader}.dataset.metainfo.classes': CLASSES,
                        f'{loader}.batch_size': 2, f'{loader}.num_workers': 0,
                        f'{loader}.persistent_workers': False})
    options['train_dataloader.dataset.pipeline.2.scale'] = (160, 160)  # after loading image and annotations
    options['test_dataloader.dataset.pipeline.1.scale'] = (160, 160)
    options['val_evaluator.ann_file'] = options['test_evaluator.ann_file'] = osp.join(
        data_root, 'annotations', 'instances_val.json')
    # Random weights rank few boxes above the default thresholds; 20 of them show what loaded, and
    # pasting and drawing Mask R-CNN's default 100 masks per image takes most of these tests' time.
    test_cfg = 'model.test_cfg.' if 'retinanet' in config else 'model.test_cfg.rcnn.'
    options.update({f'{test_cfg}score_thr': 0.0, f'{test_cfg}max_per_img': 20})
    return options


def cli_args(config: str, data_root: str, tool: str = 'test') -> list[str]:
    """The same settings as command-line options of tools/test.py or tools/infer.py."""
    def value(v):
        return f'({",".join(map(str, v))})' if isinstance(v, tuple) else str(v)
    options = ['--cfg-options', *(f'{k}={value(v)}' for k, v in synthetic_options(config, data_root).items())]
    return (['--data-root', data_root] if tool == 'test' else []) + options


def _config(config, tmp, work_dir, **extra):
    return load_config(config, {**synthetic_options(config, str(tmp / 'data')), **extra}, work_dir=str(tmp / work_dir),
                       data_root=str(tmp / 'data'))


def _build(cfg):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model)


def _random_detector(model, seed):
    """mmdet's initialisation for neck and heads (scaled to give boxes),
    every backbone tensor and statistic random: whatever fails to load shows."""
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model.init_weights()
    randomize_(model.backbone, seed)
    return model.eval()


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('release')
    generate(str(tmp / 'data'), SyntheticSpec(num_train=2, num_val=NUM_VAL, max_objects=3))
    return tmp


@pytest.fixture(scope='module', params=[RETINANET, MASK_RCNN], ids=['retinanet_m4', 'mask_rcnn_m4'])
def checkpoints(request, data):
    """One random detector saved twice: in our layout and in the release's."""
    config = request.param
    model = _random_detector(_build(_config(config, data, 'build')), seed=1)
    name = osp.basename(config)[:-3]
    ours, release = data / f'{name}_ours.pth', data / f'{name}_release.pth'
    torch.save({'meta': {'dataset_meta': {'classes': CLASSES}}, 'state_dict': model.state_dict()}, ours)
    torch.save(release_detector_checkpoint(model, CLASSES), release)
    return config, model, str(ours), str(release)


def test_the_release_file_has_the_authors_layout(checkpoints):
    _, _, _, release = checkpoints
    saved = torch.load(release, weights_only=True)
    assert set(saved) == {'meta', 'state_dict', 'optimizer'} and saved['meta']['CLASSES'] == CLASSES
    state = saved['state_dict']
    # Names and shapes as microsoft/Cream EfficientViT/downstream/efficientvit.py builds M4 (widths 128, 256,
    # 384; 4 heads; key dim 16): blocks2.0 and blocks2.2 are the downsample's residual pairs before and after
    # PatchMerging (blocks2.1), at the old and the new width; the stage's blocks follow from index 3.
    expected = {
        'backbone.patch_embed.0.c.weight': (16, 3, 3, 3),
        'backbone.patch_embed.6.bn.running_var': (128,),
        'backbone.blocks1.0.dw0.m.c.weight': (128, 1, 3, 3),
        'backbone.blocks2.0.0.m.c.weight': (128, 1, 3, 3),
        'backbone.blocks2.0.1.m.pw1.c.weight': (256, 128, 1, 1),
        'backbone.blocks2.1.conv1.c.weight': (512, 128, 1, 1),
        'backbone.blocks2.1.se.fc1.weight': (128, 512, 1, 1),
        'backbone.blocks2.1.conv3.c.weight': (256, 512, 1, 1),
        'backbone.blocks2.2.0.m.c.weight': (256, 1, 3, 3),
        'backbone.blocks2.3.mixer.m.attn.qkvs.0.c.weight': (96, 64, 1, 1),
        'backbone.blocks2.4.mixer.m.attn.dws.3.c.weight': (16, 1, 3, 3),
        'backbone.blocks3.5.ffn1.m.pw2.bn.running_var': (384,),
        'backbone.blocks3.5.mixer.m.attn.attention_biases': (4, 49),
        'backbone.blocks3.5.mixer.m.attn.attention_bias_idxs': (49, 49),
        'neck.extra_trans_convs.0.conv.weight': (256, 256, 2, 2),
    }
    assert {k: tuple(state[k].shape) for k in expected if k in state} == expected
    assert not any(k.startswith('backbone.stages.') for k in state) and 'backbone.blocks3.6.dw0.m.c.weight' not in state


def _predictions(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def test_test_tool_gives_the_same_metrics_and_predictions_for_both_layouts(checkpoints, data):
    config, _, ours, release = checkpoints
    name = osp.basename(config)[:-3]
    expected = evaluate(_config(config, data, f'{name}_eval_ours'), ours, out=str(data / f'{name}_ours.pkl'))

    result = run_tool_in_process('test.py', config, release, '--work-dir', data / f'{name}_eval_release',
                                 '--out', data / f'{name}_release.pkl', *cli_args(config, str(data / 'data')))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    for key, value in expected.items():
        if key.startswith('coco/') and key.endswith('_mAP'):
            assert f'{key}: {value:.4f}' in log, (key, value)

    # Random weights score about zero AP either way: the predictions themselves must be the same.
    theirs, mine = _predictions(data / f'{name}_release.pkl'), _predictions(data / f'{name}_ours.pkl')
    assert len(theirs) == len(mine) == NUM_VAL and len(mine[0]['pred_instances']['scores']) > 0
    for a, b in zip(theirs, mine):
        assert torch.equal(a['pred_instances']['bboxes'], b['pred_instances']['bboxes'])
        assert torch.equal(a['pred_instances']['scores'], b['pred_instances']['scores'])


def test_infer_tool_draws_the_same_pictures_for_both_layouts(checkpoints, data):
    config, _, ours, release = checkpoints
    name = osp.basename(config)[:-3]
    tool = runpy.run_path(osp.join(REPO, 'tools', 'infer.py'))
    drawn = {}
    for layout, path in (('ours', ours), ('release', release)):
        out = data / f'{name}_vis_{layout}'
        np.random.seed(0)  # mmdet jitters each drawn mask's colour with numpy's global generator
        tool['main']([config, path, str(data / 'data' / 'val'), '--out-dir', str(out), '--score-thr', '0',
                      *cli_args(config, str(data / 'data'), tool='infer')])
        drawn[layout] = {p.name: p.read_bytes() for p in sorted((out / 'vis').iterdir())}
    assert len(drawn['ours']) == NUM_VAL and drawn['ours'] == drawn['release']


def test_mmdets_own_inference_api_loads_the_release_layout(checkpoints, data):
    from mmdet.apis import init_detector
    config, model, _, release = checkpoints
    cfg = _config(config, data, 'api')
    detector = init_detector(cfg, release, device='cpu')
    expected = model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in detector.state_dict().items())
    assert detector.dataset_meta['classes'] == CLASSES


def test_fine_tuning_from_the_release_on_other_classes_starts_from_its_weights(data, capfd):
    """load_from a released 80-class RetinaNet into a 6-class one: everything
    but the class scores comes from the file, and one line says so."""
    coco = _random_detector(_build(load_config(RETINANET)), seed=2)  # 80 classes, as released
    release = data / 'retinanet_coco80_release.pth'
    torch.save(release_detector_checkpoint(coco), release)
    cfg = _config(RETINANET, data, 'finetune', **{
        'load_from': str(release), 'optim_wrapper.optimizer.lr': 0.0, 'param_scheduler': [],
        'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1, val_interval=100),
        'default_hooks.checkpoint.by_epoch': False, 'log_processor.by_epoch': False})
    runner = train(cfg)
    log = capfd.readouterr().out
    assert 'do not match exactly' not in log  # mmengine's key dump
    assert ('these layers start from their initialisation: bbox_head: 2 tensors shaped for other classes '
            '(retina_cls.weight, retina_cls.bias).') in log
    tuned, source = runner.model.state_dict(), coco.state_dict()
    assert tuned['bbox_head.retina_cls.weight'].shape[0] == 9 * len(CLASSES)  # the new classes' layer
    same = [k for k in tuned if k in source and tuned[k].shape == source[k].shape]
    assert any(k.startswith('backbone.stages.2.') for k in same)
    # lr 0 and frozen BatchNorm statistics (norm_eval): the loaded weights are still the file's.
    assert all(torch.equal(tuned[k], source[k]) for k in same if not k.endswith('num_batches_tracked'))


def test_convert_tool_writes_a_whole_detector_in_our_layout(checkpoints, data, capsys):
    config, model, _, release = checkpoints
    name = osp.basename(config)[:-3]
    tool = runpy.run_path(osp.join(REPO, 'tools', 'convert_checkpoint.py'))
    whole, backbone = data / f'{name}_converted.pth', data / f'{name}_backbone.pth'
    tool['main']([release, str(whole)])
    assert 'official format, whole model, EfficientViT-M4 backbone, 6 class names' in capsys.readouterr().out
    saved = torch.load(whole, weights_only=True)
    expected = model.state_dict()
    assert saved['state_dict'].keys() == expected.keys()
    assert all(torch.equal(saved['state_dict'][k], v) for k, v in expected.items())
    assert saved['meta']['dataset_meta'] == {'classes': CLASSES} and saved['meta']['arch'] == 'm4'

    tool['main']([release, str(backbone), '--backbone-only'])
    state = torch.load(backbone, weights_only=True)['state_dict']
    assert state.keys() == model.backbone.state_dict().keys()
    with pytest.raises(CheckpointError, match=r'it holds a backbone alone, named without the "backbone." prefix .*'
                                              r'ImageNet backbone weights go in model.backbone.init_cfg.checkpoint'):
        check_checkpoint_fits(model, str(backbone), 'fine-tune')  # as load_from


def _without(state, prefix):
    return {k: v for k, v in state.items() if not k.startswith(prefix)}


def test_a_checkpoint_whose_backbone_matches_nothing_stops_the_test_tool(checkpoints, data):
    config, model, _, _ = checkpoints
    name = osp.basename(config)[:-3]
    state = {k.replace('backbone.', 'backbone.body.'): v for k, v in model.state_dict().items()}
    path = data / f'{name}_renamed_backbone.pth'
    torch.save({'meta': {}, 'state_dict': state}, path)
    result = run_tool_in_process('test.py', config, path, '--work-dir', data / f'{name}_refused',
                                 *cli_args(config, str(data / 'data')))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'Traceback' not in result.stderr
    assert f"{path} holds none of the weights of the model's backbone" in errors[0]
    assert 'backbone.body.' in errors[0]  # what the file holds instead
    assert 'coco/bbox_mAP' not in result.stdout + result.stderr


def test_each_part_left_without_weights_is_named(checkpoints, data):
    config, model, _, _ = checkpoints
    parts = ['neck', 'bbox_head'] if 'retinanet' in config else ['rpn_head', 'roi_head.bbox_head',
                                                                 'roi_head.mask_head']
    for part in parts:
        path = data / f'without_{part}.pth'
        torch.save({'state_dict': _without(model.state_dict(), part + '.')}, path)
        with pytest.raises(CheckpointError, match=rf"holds none of the weights of the model's {part} "):
            check_checkpoint_fits(model, str(path), 'evaluate')
        with pytest.raises(CheckpointError, match=rf"model's {part} .*convert_checkpoint.py --backbone-only"):
            check_checkpoint_fits(model, str(path), 'fine-tune')


def test_a_partly_covered_part_is_refused_for_evaluation_and_reported_once_for_fine_tuning(checkpoints, data):
    _, model, _, _ = checkpoints
    state = _without(model.state_dict(), 'backbone.stages.2.blocks.2.')
    path = data / 'partial.pth'
    torch.save({'state_dict': state}, path)
    missing = sum(1 for k in model.state_dict() if k.startswith('backbone.stages.2.blocks.2.')
                  and not k.endswith('num_batches_tracked'))
    with pytest.raises(CheckpointError) as err:
        check_checkpoint_fits(model, str(path), 'evaluate')
    message = str(err.value)
    assert f'backbone: {missing} of ' in message and 'stages.2.blocks.2.' in message and '\n' not in message
    check_checkpoint_fits(model, str(path), 'fine-tune')  # a warning, not an error


def test_the_stage3_bias_table_is_resized_as_the_release_does(timm_model):
    """ImageNet weights (stage 3 trained on 4x4 maps) into the detection
    backbone (7x7 windows): plain bicubic, as microsoft/Cream's downstream
    EfficientViT.init_weights does it, computed here independently."""
    table = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(table.view(1, 4, 4, 4), size=(7, 7), mode='bicubic').view(4, 49)
    assert torch.equal(resize_bias_table(table, 7), expected)

    imagenet = timm_model('m4').state_dict()
    model = EfficientViT('m4')
    model.load_state_dict({k: v for k, v in imagenet.items() if not k.startswith('head.')})  # through the load hook
    for i in range(3):
        key = f'stages.2.blocks.{i}.mixer.m.attn.attention_biases'
        table = imagenet[key]
        assert table.shape == (4, 16)
        expected = F.interpolate(table.view(1, 4, 4, 4), size=(7, 7), mode='bicubic').view(4, 49)
        assert torch.equal(model.state_dict()[key], expected)


# --------------------------------------------------------------------------
# The parts of other models, and files mmengine would read differently


def test_segmentor_and_classifier_heads_are_parts_of_their_own(tmp_path):
    from mmseg.registry import MODELS as SEG_MODELS

    from efficientvit_dense.analysis.reference import imagenet_classifier
    from efficientvit_dense.engine.checkpoint_fit import model_parts
    cfg = load_config(osp.join(REPO, 'configs', 'upernet_efficientvit_m4_ade20k.py'))
    with DefaultScope.overwrite_default_scope('mmseg'):
        segmentor = SEG_MODELS.build(cfg.model)
    assert model_parts(segmentor) == ['backbone', 'neck', 'decode_head', 'auxiliary_head']
    torch.save({'state_dict': _without(segmentor.state_dict(), 'auxiliary_head.')}, tmp_path / 'seg.pth')
    with pytest.raises(CheckpointError, match="none of the weights of the model's auxiliary_head"):
        check_checkpoint_fits(segmentor, str(tmp_path / 'seg.pth'), 'evaluate')

    from mmpretrain.registry import MODELS as CLS_MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = CLS_MODELS.build(imagenet_classifier('m0', distillation=True))
    assert model_parts(classifier) == ['backbone', 'head.head', 'head.head_dist']
    torch.save({'state_dict': _without(classifier.state_dict(), 'head.head_dist.')}, tmp_path / 'cls.pth')
    with pytest.raises(CheckpointError, match="none of the weights of the model's head.head_dist"):
        check_checkpoint_fits(classifier, str(tmp_path / 'cls.pth'), 'evaluate')


class _Detector(torch.nn.Module):
    """A model with tensors outside its parts: roi_head's own, the model's own."""

    def __init__(self, classes=3, width=4):
        super().__init__()
        self.level_embed = torch.nn.Parameter(torch.zeros(2, width))
        self.backbone = torch.nn.Linear(width, width)
        self.roi_head = torch.nn.Module()
        self.roi_head.scale = torch.nn.Parameter(torch.ones(1))
        self.roi_head.bbox_head = torch.nn.Linear(width, classes + 1)
        self.roi_head.mask_head = torch.nn.Linear(width, classes)


def test_every_tensor_belongs_to_a_part_that_must_be_covered(tmp_path):
    model = _Detector()
    state = model.state_dict()
    for left_out, part in (('roi_head.mask_head.', 'roi_head.mask_head'), ('level_embed', 'level_embed'),
                           ('roi_head.scale', 'roi_head')):
        torch.save({'state_dict': _without(state, left_out)}, tmp_path / 'x.pth')
        for purpose in ('evaluate', 'fine-tune'):
            with pytest.raises(CheckpointError, match=rf"none of the weights of the model's {part} "):
                check_checkpoint_fits(model, str(tmp_path / 'x.pth'), purpose)


def test_fine_tuning_allows_heads_for_other_classes_only(tmp_path):
    torch.save({'state_dict': _Detector(classes=80).state_dict()}, tmp_path / 'coco.pth')
    check_checkpoint_fits(_Detector(classes=3), str(tmp_path / 'coco.pth'), 'fine-tune')
    wider = dict(_Detector(classes=3).state_dict())
    wider['roi_head.bbox_head.weight'] = torch.zeros(4, 8)  # the same classes, another input width
    torch.save({'state_dict': wider}, tmp_path / 'wider.pth')
    with pytest.raises(CheckpointError, match=r'another model: 1 tensors .*file \(4, 8\) vs model \(4, 4\)'):
        check_checkpoint_fits(_Detector(classes=3), str(tmp_path / 'wider.pth'), 'fine-tune')


def test_weights_where_mmengine_does_not_look_are_refused(tmp_path):
    model = _Detector()
    torch.save({'model': model.state_dict()}, tmp_path / 'official.pth')
    with pytest.raises(CheckpointError, match="keeps its weights under 'model'.*nothing would load"):
        check_checkpoint_fits(model, str(tmp_path / 'official.pth'), 'evaluate')
    torch.save({'state_dict': {f'module.{k}': v for k, v in model.state_dict().items()}}, tmp_path / 'ddp.pth')
    check_checkpoint_fits(model, str(tmp_path / 'ddp.pth'), 'evaluate')  # mmengine strips a DDP prefix too


def test_only_mmengines_key_dump_is_left_out_of_the_output(capsys):
    from efficientvit_dense.engine.checkpoint_fit import without_mmengine_key_dump
    with without_mmengine_key_dump():
        print('before')
        print('The model and loaded state dict do not match exactly\n\nmissing keys in source state_dict: a, b\n')
        print('after')
        assert sys.stdout.encoding and sys.stdout.isatty() in (True, False)
    assert capsys.readouterr().out == 'before\nafter\n'
