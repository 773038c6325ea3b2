"""One error style across the tools: each subcommand, given bad input, ends in one
``error: ...`` line naming the input and a non-zero documented exit code -- no traceback."""
import pytest

from hcnet.cli import run


@pytest.mark.parametrize('command,args,needle', [
    ('train', ['--config', 'no_such_config'], 'no_such_config'),
    ('train', ['--config', 'hc_m10_i10.yaml', 'train.no_such_key=1'], 'train.no_such_key'),
    ('eval', ['--config', 'no_such_config'], 'no_such_config'),
    ('eval', ['--config', 'fashion_mnist', '--checkpoint', '/nonexistent/x.ckpt'],
     '/nonexistent/x.ckpt'),
    ('describe', ['no_such_model'], 'no_such_model'),
    ('export', ['no_such_model', '--out', '/tmp/hcnet_never_written'], 'no_such_model'),
    ('export', ['--checkpoint', '/nonexistent/x.ckpt', '--out', '/tmp/hcnet_never_written'],
     '/nonexistent/x.ckpt'),
    ('publish', ['/nonexistent/x.ckpt', '--out', '/tmp/hcnet_never_written'],
     '/nonexistent/x.ckpt'),
    ('bench-latency', ['--models', 'no_such_model'], 'no_such_model'),
    ('bench-latency', ['--models', 'hc_m5_i10', '--mxnet-fast-options', '[1]'],
     '--mxnet-fast-options'),
    ('profile-latency', ['--models', 'no_such_model'], 'no_such_model'),
    ('bench-train', ['no_such_model', '--steps', '1'], 'no_such_model'),
    ('bench-train', ['hc_m5_i10', '--steps', '0'], '--steps'),
    ('figure2', ['/nonexistent/run', '--out', '/tmp/hcnet_never_written'], '/nonexistent/run'),
    ('irnet-data', ['/nonexistent/imagenet', '--out', '/tmp/hcnet_never_written'],
     '/nonexistent/imagenet'),
    ('convert', ['/nonexistent/x.pth', '--source', 'timm:efficientnet_b0',
                 '--out', '/tmp/hcnet_never_written'], '/nonexistent/x.pth'),
    ('convert', ['/nonexistent/x.pth', '--source', 'timm:no_such_model',
                 '--out', '/tmp/hcnet_never_written'], 'timm:no_such_model'),
])
def test_bad_input_is_one_line(command, args, needle, capsys):
    code = run(command, args)
    assert code == 2, code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error: ') and needle in err[0], err


@pytest.mark.parametrize('command', ['train', 'eval', 'export', 'describe', 'tables',
                                     'bench-latency', 'bench-train', 'figure2', 'irnet-data',
                                     'convert'])
def test_unknown_options_are_argparse_errors(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(command, ['--no-such-option'])
    assert exit_.value.code == 2
    assert 'Traceback' not in capsys.readouterr().err
