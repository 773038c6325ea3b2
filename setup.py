"""hcnet: Hybrid Composition with IdleBlock (Xu et al., 2019) in MXNet Gluon / GluonCV."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r"__version__ = '([^']+)'", (HERE / 'hcnet' / '__init__.py').read_text()).group(1)

# mxnet 1.9.1 needs numpy < 1.24; gluoncv 0.10.5 would otherwise pull numpy 2 through
# its unpinned dependencies, so those are constrained here as well.
INSTALL_REQUIRES = [
    'mxnet==1.9.1',
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
        'test': ['pytest>=7'],
        # Horovod builds from source against the installed mxnet; see README (distributed).
        'distributed': ['horovod==0.28.1'],
    },
    include_package_data=True,
)
