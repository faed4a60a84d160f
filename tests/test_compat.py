"""Each shim in efficientvit_dense.engine.compat, shown to be needed: these tests
fail when the shim is taken out."""
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner

from efficientvit_dense.engine.compat import HISTORY_BUFFER_KEY


class _TinyRegressor(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x, y, mode='loss'):
        out = self.linear(x).squeeze(-1)
        return dict(loss=((out - y) ** 2).mean()) if mode == 'loss' else out


def _runner(work_dir, max_epochs, resume):
    gen = torch.Generator().manual_seed(0)
    dataset = [dict(x=torch.randn(4, generator=gen), y=torch.randn((), generator=gen)) for _ in range(8)]
    return Runner(
        model=_TinyRegressor(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=dataset, batch_size=4, collate_fn=dict(type='default_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1), logger=None),
        resume=resume, randomness=dict(seed=0))


def test_mmengine_resume_works_with_safe_loading(tmp_path):
    _runner(tmp_path, max_epochs=1, resume=False).train()
    runner = _runner(tmp_path, max_epochs=2, resume=True)
    runner.train()
    assert runner.epoch == 2 and runner.iter == 4  # resumed after epoch 1, not started again
    # The log history is stored as plain types (any process can open the file safely) ...
    state = torch.load(tmp_path / 'epoch_2.pth', weights_only=True)['message_hub']
    stored = state['log_scalars']
    assert stored and all(set(v) == {HISTORY_BUFFER_KEY} for v in stored.values())
    # ... and a message hub loading it gets its HistoryBuffers back.
    hub = MessageHub('plain-history-test')
    hub.load_state_dict(state)
    loss = hub.get_scalar('train/loss')
    assert isinstance(loss, HistoryBuffer) and list(loss.data[0]) == stored['train/loss'][HISTORY_BUFFER_KEY]['log']


def test_a_checkpoint_written_before_the_plain_history_still_resumes(tmp_path):
    _runner(tmp_path, max_epochs=1, resume=False).train()
    checkpoint = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)
    state = checkpoint['message_hub']['log_scalars']
    for key, value in state.items():  # as mmengine wrote them before: HistoryBuffer objects
        state[key] = HistoryBuffer(value[HISTORY_BUFFER_KEY]['log'], value[HISTORY_BUFFER_KEY]['count'])
    torch.save(checkpoint, tmp_path / 'epoch_1.pth')
    runner = _runner(tmp_path, max_epochs=2, resume=True)
    runner.train()
    assert runner.epoch == 2 and runner.iter == 4


def test_allow_list_still_refuses_other_getattr_calls(tmp_path):
    class ReachesTofile:
        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))

    path = tmp_path / 'evil.pth'
    torch.save({'x': ReachesTofile()}, path)
    with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer statistics'):
        torch.load(path, weights_only=True)


def test_np_in1d_is_available_for_mmpretrain_retrieval_metrics():
    from mmpretrain.evaluation.metrics import RetrievalRecall

    recall = RetrievalRecall.calculate([[0, 1, 2], [3, 4, 5]], [[1], [9]], topk=(1, 3),
                                       pred_indices=True, target_indices=True)
    assert [float(r) for r in recall] == [0.0, 50.0]
    assert np.in1d([[1, 2], [3, 4]], [2, 3]).tolist() == [False, True, True, False]


def test_mmseg_class_weighted_cross_entropy_takes_ignored_pixels():
    """Class weights plus one ignored (255) pixel crashed mmseg 1.2.2; with
    avg_non_ignore the loss is torch's weighted mean over labelled pixels."""
    from mmseg.models.losses import CrossEntropyLoss
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=gen)
    labels = torch.randint(0, 3, (2, 4, 5), generator=gen)
    labels[:, 0] = 255
    class_weight = [0.2, 1.0, 3.0]
    loss = CrossEntropyLoss(class_weight=class_weight, avg_non_ignore=True)(logits, labels, ignore_index=255)
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=torch.tensor(class_weight),
                                                 ignore_index=255)
    assert torch.allclose(loss, expected)
