"""Perceptual (LPIPS), adversarial and diffusion losses, and the conditional discriminator."""

from __future__ import annotations

from pathlib import Path

import lpips
import numpy as np
import pytest
import torch

from gencodec.training import losses
from gencodec.errors import GencodecError
from gencodec.training.discriminator import ConditionalDiscriminator
from gencodec.evaluation.perceptual import LPIPS_WEIGHTS_ENV, SafeLPIPS, load_lpips, safe_normalize

from .conftest import LPIPS_CHECK, LPIPS_WEIGHTS


@pytest.fixture(scope="module")
def lpips_net():
    if not LPIPS_WEIGHTS.is_file():
        pytest.skip(f"LPIPS backbone {LPIPS_WEIGHTS} not present")
    return load_lpips(LPIPS_WEIGHTS)


def _rgb_minus1_1(path: Path) -> torch.Tensor:
    from PIL import Image
    arr = np.array(Image.open(path).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1)[None] / 127.5 - 1


# --- LPIPS ------------------------------------------------------------------

def test_lpips_reproduces_published_values(lpips_net):
    if not all((LPIPS_CHECK / n).is_file() for n in ("ex_ref.png", "ex_p0.png", "ex_p1.png")):
        pytest.skip(f"LPIPS example images in {LPIPS_CHECK} not present")
    ref, p0, p1 = (_rgb_minus1_1(LPIPS_CHECK / n) for n in ("ex_ref.png", "ex_p0.png", "ex_p1.png"))
    with torch.no_grad():
        d0, d1 = lpips_net(ref, p0).item(), lpips_net(ref, p1).item()
    assert d0 == pytest.approx(0.722, abs=0.002)
    assert d1 == pytest.approx(0.138, abs=0.002)


def test_lpips_is_frozen(lpips_net):
    assert isinstance(lpips_net, SafeLPIPS)
    assert not lpips_net.training
    assert all(not p.requires_grad for p in lpips_net.parameters())
    lpips_net.train()  # a parent's .train() must not switch on the heads' dropout
    assert not lpips_net.training and not any(m.training for m in lpips_net.modules())


def test_safe_lpips_equals_lpips_forward(lpips_net):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(a.shape, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        safe = lpips_net(a, b)
        ref = lpips.LPIPS.forward(lpips_net, a, b)
        safe01 = lpips_net((a + 1) / 2, (b + 1) / 2, normalize=True)
    assert safe.shape == ref.shape == (2, 1, 1, 1)
    torch.testing.assert_close(safe, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(safe01, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["random", "black"])
def test_lpips_gradient_finite_at_identical_inputs(lpips_net, kind):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 64, 64, generator=g) if kind == "random" else torch.zeros(2, 3, 64, 64)
    x_hat = x.clone().requires_grad_(True)
    d = losses.lpips_distance(lpips_net, x_hat, x)
    assert d.shape == (2,)
    assert torch.all(d.abs() < 1e-6)
    d.sum().backward()
    assert torch.isfinite(x_hat.grad).all()
    # (Unpatched lpips.LPIPS is finite here too: see test_unpatched_lpips_nan_is_in_feature_gradient.)


def test_lpips_distance_gradient_finite_and_nonzero(lpips_net):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 64, 64, generator=g)
    x_hat = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1).requires_grad_(True)
    d = losses.lpips_distance(lpips_net, x_hat, x)
    d.sum().backward()
    assert d.item() > 0
    assert torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0


def test_safe_normalize_matches_and_has_finite_gradient_at_zero():
    g = torch.Generator().manual_seed(3)
    f = torch.relu(torch.randn(2, 16, 5, 5, generator=g))
    torch.testing.assert_close(safe_normalize(f), lpips.normalize_tensor(f), atol=1e-6, rtol=1e-6)
    for normalize, finite in ((safe_normalize, True), (lpips.normalize_tensor, False)):
        z = torch.zeros(1, 8, 2, 2, requires_grad=True)
        (normalize(z) ** 2).sum().backward()  # the same path as LPIPS at identical inputs
        assert torch.isfinite(z.grad).all() == finite


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
def test_unpatched_lpips_nan_is_in_feature_gradient():
    """Where a whole feature vector is zero, lpips' sqrt puts NaN into the gradient of that
    feature map; SafeLPIPS does not. (With AlexNet the ReLU backward then masks it, so
    input gradients stay finite; any non-ReLU consumer of that gradient would get NaN.)
    A random backbone with a dead first layer makes every relu1 vector zero; no download."""
    net = SafeLPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    with torch.no_grad():
        net.net.slice1._modules["0"].bias.fill_(-1e3)
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    y = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    for forward, finite in ((net.forward, True), (lambda a, b: lpips.LPIPS.forward(net, a, b), False)):
        seen = []

        def hook(module, args, out):
            if out.requires_grad:  # only x1's pass, not y's
                out.register_hook(lambda grad: seen.append(bool(torch.isfinite(grad).all())))

        handle = net.net.slice1.register_forward_hook(hook)
        x1 = x.clone().requires_grad_(True)
        forward(x1, y).sum().backward()
        handle.remove()
        assert seen and all(s == finite for s in seen)
        assert torch.isfinite(x1.grad).all()


def test_missing_weights_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(GencodecError) as err:
        load_lpips(missing)
    msg = str(err.value)
    assert "\n" not in msg and "LPIPS weights not found" in msg and str(missing) in msg


def test_env_var_is_honoured(tmp_path, monkeypatch):
    missing = tmp_path / "from_env.pth"
    monkeypatch.setenv(LPIPS_WEIGHTS_ENV, str(missing))
    with pytest.raises(GencodecError, match="from_env.pth"):
        load_lpips()
    if LPIPS_WEIGHTS.is_file():
        monkeypatch.setenv(LPIPS_WEIGHTS_ENV, str(LPIPS_WEIGHTS))
        a = torch.zeros(1, 3, 32, 32)
        with torch.no_grad():
            assert load_lpips()(a, a + 0.5).item() > 0


def test_bad_weights_files_are_rejected(tmp_path):
    good = {f"features.{i}.{p}": t for i, (w, b) in {
        0: ((64, 3, 11, 11), (64,)), 3: ((192, 64, 5, 5), (192,)), 6: ((384, 192, 3, 3), (384,)),
        8: ((256, 384, 3, 3), (256,)), 10: ((256, 256, 3, 3), (256,))}.items()
        for p, t in (("weight", torch.zeros(w)), ("bias", torch.zeros(b)))}
    cases = {
        "missing": {k: v for k, v in good.items() if k != "features.8.bias"},
        "unexpected": {**good, "classifier.1.weight": torch.zeros(2)},
        "shape": {**good, "features.3.weight": torch.zeros(192, 64, 3, 3)},
    }
    for name, state in cases.items():
        path = tmp_path / f"{name}.pth"
        torch.save(state, path)
        with pytest.raises(GencodecError) as err:
            load_lpips(path)
        assert "\n" not in str(err.value)
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(GencodecError):
        load_lpips(path)


def test_no_weights_offline_is_a_clear_error(monkeypatch):
    """No file and no env var: lpips tries torchvision's download; offline that fails."""
    import urllib.error

    import lpips.pretrained_networks as pn

    class OfflineTorchvision:
        @staticmethod
        def alexnet(*args, **kwargs):
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.delenv(LPIPS_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(pn, "tv", OfflineTorchvision)
    with pytest.raises(GencodecError) as err:
        load_lpips()
    msg = str(err.value)
    assert "\n" not in msg and LPIPS_WEIGHTS_ENV in msg and "weights file" in msg


# --- discriminator ----------------------------------------------------------

def _disc_inputs(seed=0, n=2, h=64, w=96, c_y=8):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g), torch.randn(n, c_y, h // 16, w // 16, generator=g)


def test_discriminator_shape():
    torch.manual_seed(0)
    d = ConditionalDiscriminator(latent_channels=8)
    x, y = _disc_inputs()
    assert d(x, y).shape == (2, 1, 4, 6)
    d3 = ConditionalDiscriminator(latent_channels=8, channels=(16, 32, 32))
    assert d3(x, y).shape == (2, 1, 8, 12)
    with pytest.raises(ValueError):
        d(x, y[..., :-1])


SMALL = (16, 32, 32, 32)  # the default widths' behaviour, at a fraction of the CPU time


def test_discriminator_uses_condition_and_passes_gradient():
    torch.manual_seed(0)
    d = ConditionalDiscriminator(latent_channels=8, channels=SMALL).eval()  # eval: spectral norm's power iteration frozen
    x, y = _disc_inputs()
    _, y2 = _disc_inputs(seed=1)
    with torch.no_grad():
        a, a_again, b = d(x, y), d(x, y), d(x, y2)
    torch.testing.assert_close(a, a_again)
    assert (a - b).abs().max() > 1e-4
    y_req = y.clone().requires_grad_(True)
    d.train()
    d(x, y_req).sum().backward()
    assert torch.isfinite(y_req.grad).all() and y_req.grad.abs().sum() > 0
    assert all(p.grad is not None for p in d.parameters())


# --- adversarial losses -----------------------------------------------------

def test_hinge_losses():
    real, fake = torch.full((2, 1, 4, 4), 1.5), torch.full((2, 1, 4, 4), -1.0)
    assert losses.hinge_d_loss(real, fake).item() == 0.0
    assert losses.hinge_d_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)).item() == pytest.approx(2.0)
    assert losses.hinge_d_loss(real, fake).shape == ()
    assert losses.hinge_g_loss(fake).item() == pytest.approx(1.0)
    assert losses.hinge_g_loss(real).item() == pytest.approx(-1.5)


def test_nonsaturating_losses():
    z = torch.zeros(3, 1, 2, 2)
    assert losses.nonsaturating_d_loss(z, z).item() == pytest.approx(2 * np.log(2), rel=1e-6)
    assert losses.nonsaturating_g_loss(z).item() == pytest.approx(np.log(2), rel=1e-6)
    big = torch.full((3, 1, 2, 2), 50.0)
    assert losses.nonsaturating_d_loss(big, -big).item() < 1e-6  # confident and right: ~0, no overflow
    assert losses.nonsaturating_g_loss(-big).item() == pytest.approx(50.0, rel=1e-4)  # still a gradient
    fake = (-big).requires_grad_(True)
    losses.nonsaturating_g_loss(fake).backward()
    assert fake.grad.abs().min() > 0
    assert losses.nonsaturating_g_loss(z).shape == ()


def test_r1_penalty():
    torch.manual_seed(0)
    d = ConditionalDiscriminator(latent_channels=8, channels=SMALL)
    x, y = _disc_inputs(h=32, w=48)
    x = x.requires_grad_(True)
    r1 = losses.r1_penalty(d(x, y), x)
    assert r1.shape == () and r1.item() > 0
    r1.backward()  # create_graph: the penalty trains D
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())

    # A discriminator that ignores the image: penalty 0, and its backward stays finite.
    w = torch.ones((), requires_grad=True)
    x2 = torch.rand(2, 3, 8, 8).requires_grad_(True)
    r1_const = losses.r1_penalty(w * torch.ones(2, 1, 2, 2) + 0 * x2.mean(), x2)
    assert r1_const.item() == 0.0
    r1_const.backward()
    assert torch.isfinite(w.grad).all()
    r1_unused = losses.r1_penalty(w * torch.ones(2, 1, 2, 2), x2)
    assert r1_unused.item() == 0.0
    r1_unused.backward()

    with pytest.raises(ValueError):
        losses.r1_penalty(d(x.detach(), y), x.detach())


def test_diffusion_loss():
    pred, target = torch.zeros(4, 3, 8, 8), torch.ones(4, 3, 8, 8)
    target[1] = 3.0  # sample 1 has MSE 9, the others 1
    assert losses.diffusion_loss(pred, target).item() == pytest.approx(3.0)
    assert losses.diffusion_loss(pred, target, torch.ones(4)).item() == pytest.approx(3.0)
    assert losses.diffusion_loss(pred, target, torch.tensor([1.0, 0.0, 1.0, 1.0])).item() == pytest.approx(0.75)
    assert losses.diffusion_loss(pred, target, torch.tensor([0.0, 1.0, 0.0, 0.0])).item() == pytest.approx(2.25)
    assert losses.diffusion_loss(pred, pred).item() == 0.0
    with pytest.raises(ValueError):
        losses.diffusion_loss(pred, target, torch.ones(3))
