"""What the README's commands run: the synthetic dataset, the offline demos
and the backbone comparison."""
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
