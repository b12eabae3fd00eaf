"""The integer scale network is exact: it equals an independent int64 reference bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gencodec.entropy import integer_scale as iscale


def _reference_indexes(net: iscale.IntegerScaleNet, z_hat: np.ndarray, level: int) -> np.ndarray:
    """The same network in numpy int64 arithmetic: no floating point anywhere after rounding weights."""
    def fixed(t, frac, limit):
        return np.clip(np.round(t.detach().double().numpy() * (1 << frac)), -limit, limit).astype(np.int64)

    def conv3x3(a, w, b):  # a (C,H,W) int64, w (O,C,3,3), b (O,)
        c, h, wd = a.shape
        p = np.pad(a, ((0, 0), (1, 1), (1, 1)))
        out = np.zeros((w.shape[0], h, wd), dtype=np.int64)
        for dy in range(3):
            for dx in range(3):
                out += np.einsum("oc,chw->ohw", w[:, :, dy, dx], p[:, dy:dy + h, dx:dx + wd])
        return out + b[:, None, None]

    def depth_to_space(a):
        c, h, w = a.shape
        return a.reshape(c // 4, 2, 2, h, w).transpose(0, 3, 1, 4, 2).reshape(c // 4, 2 * h, 2 * w)

    a = np.clip(z_hat.astype(np.int64), -iscale.INPUT_MAX, iscale.INPUT_MAX)
    convs = [net.conv1, net.conv2, net.conv3]
    for i, conv in enumerate(convs):
        in_frac, out_frac = net._fracs[i]
        acc_frac = in_frac + iscale.WEIGHT_FRAC
        w = fixed(conv.weight, iscale.WEIGHT_FRAC, iscale.WEIGHT_MAX)
        bias = conv.bias.double()
        if i == 0:
            bias = bias + net.level_bias1[level].double()
        if i == 2:
            bias = bias + net.level_bias3[level].double()
        acc = conv3x3(a, w, fixed(bias, acc_frac, iscale.BIAS_MAX))
        if out_frac is None:
            return np.clip((acc + (1 << (acc_frac - 1))) >> acc_frac, 0, net.n_scales - 1)
        a = depth_to_space(np.clip(acc >> (acc_frac - out_frac), 0, iscale.ACT_MAX))


@pytest.fixture(scope="module")
def net(rich_codec):
    return rich_codec.model.latent_codec.scale_net


def _random_z(shape, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(-6, 7, shape, generator=g)
    z.view(-1)[::11] = torch.randint(-200, 201, z.view(-1)[::11].shape, generator=g)  # beyond the input clip
    return z


@pytest.mark.parametrize("level", [0, 3, 7])
def test_exact_path_equals_int64_reference(net, level):
    z = _random_z((1, net.conv1.in_channels, 3, 5), seed=level)
    got = net.indexes(z, level)[0].numpy()
    want = _reference_indexes(net, z[0].numpy(), level)
    assert len(np.unique(want)) > 10, "test network too flat to be a real check"
    np.testing.assert_array_equal(got, want)


def test_indexes_ignore_threads_batch_and_layout(net):
    z = _random_z((3, net.conv1.in_channels, 4, 6), seed=11)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = [net.indexes(z[i: i + 1], 2) for i in range(3)]
        torch.set_num_threads(max(2, threads))
        batched = net.indexes(z, 2)
        strided = net.indexes(z.transpose(2, 3).contiguous().transpose(2, 3), 2)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.cat(single), batched)
    assert torch.equal(batched, strided)


def test_parameters_in_float64_give_the_same_indexes(net):
    import copy
    z = _random_z((1, net.conv1.in_channels, 3, 3), seed=5)
    assert torch.equal(net.indexes(z, 4), copy.deepcopy(net).double().indexes(z, 4))


def test_training_path_matches_exact_path(net):
    """What is trained is what is coded: the float32 straight-through forward gives the same indexes."""
    z = _random_z((2, net.conv1.in_channels, 3, 4), seed=9)
    level = torch.tensor([1, 6])
    train = net(z.float(), level).detach()
    exact = torch.cat([net.indexes(z[i: i + 1], int(level[i])) for i in range(2)])
    agree = (train == exact.float()).float().mean().item()
    assert agree > 0.999


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_indexes_equal_cpu_indexes(net):
    import copy
    z = _random_z((2, net.conv1.in_channels, 8, 8), seed=3)
    gpu = copy.deepcopy(net).cuda().indexes(z.cuda(), 5).cpu()
    assert torch.equal(gpu, net.indexes(z, 5))
