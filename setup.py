"""hcnet: Hybrid Composition with IdleBlock (Xu et al., 2019) in MXNet Gluon / GluonCV."""
import os
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r"__version__ = '([^']+)'", (HERE / 'hcnet' / '__init__.py').read_text()).group(1)

# mxnet 1.9.1 needs numpy < 1.24; gluoncv 0.10.5 would otherwise pull numpy 2 through
# its unpinned dependencies, so those are constrained here as well.
# GPU images install the CUDA build instead (HCNET_MXNET_PACKAGE=mxnet-cu112, see docker/).
MXNET_PACKAGE = os.environ.get('HCNET_MXNET_PACKAGE', 'mxnet')
MXNET_VERSION = '1.9.1'
HOROVOD_VERSION = '0.28.1'
# safetensors' numpy API (hcnet convert); its wheels depend on nothing but numpy
SAFETENSORS = 'safetensors>=0.4,<1'

INSTALL_REQUIRES = [
    '%s==%s' % (MXNET_PACKAGE, MXNET_VERSION),
    'numpy>=1.17,<1.24',
    'gluoncv==0.10.5.post0',
    'opencv-python<4.9',
    'pandas<2.1',
    'scipy<1.12',
    'matplotlib<3.9',
    'pyyaml>=5.1',
    'tqdm>=4.40',
]

setup(
    name='hcnet',
    version=VERSION,
    description='Hybrid Composition with IdleBlock: MXNet/GluonCV reference implementation',
    long_description=(HERE / 'README.md').read_text() if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['hcnet', 'hcnet.*']),
    python_requires='>=3.8',
    install_requires=INSTALL_REQUIRES,
    extras_require={
        'test': ['pytest>=7', 'onnx==1.14.1', 'onnxruntime==1.31.1', SAFETENSORS],
        # hcnet convert's .safetensors reader (numpy only; PyTorch files need nothing)
        'convert': [SAFETENSORS],
        # scripts/export_model.py (+ its onnxruntime check); tested with mxnet 1.9.1's exporter
        'export': ['onnx==1.14.1', 'onnxruntime==1.31.1'],
        # Horovod builds from source against the installed mxnet; see README (distributed).
        'distributed': ['horovod==%s' % HOROVOD_VERSION],
    },
    # the configs, the store's shipped index and IR-Net's class list are package data: a
    # wheel finds them
    package_data={'hcnet': ['configs/*.yaml', 'configs/*/*.yaml', 'store/index.json',
                            'data/*.txt']},
    entry_points={'console_scripts': ['hcnet = hcnet.cli:main']},
)
