"""Independent PyTorch reference of BasicVSR as DESIGN.md section 2 specifies it.

Written from the design text, not from the C++ code, so that the two can check each other.
Weights are a dict of canonical (BasicSR) names to tensors.
"""
import math

import torch
import torch.nn.functional as F

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def conv(w, name, x):
    weight = w[name + ".weight"]
    return F.conv2d(x, weight, w[name + ".bias"], padding=weight.shape[-1] // 2)


def flow_warp(x, flow, padding_mode="zeros"):
    """x: N,C,H,W; flow: N,2,H,W (dx, dy) in pixels."""
    _, _, h, w = x.shape
    gy, gx = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    vx = gx + flow[:, 0]
    vy = gy + flow[:, 1]
    vx = 2.0 * vx / max(w - 1, 1) - 1.0
    vy = 2.0 * vy / max(h - 1, 1) - 1.0
    grid = torch.stack((vx, vy), dim=3)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def spynet_module(w, level, x):
    for k in range(5):
        x = conv(w, f"spynet.basic_module.{level}.basic_module.{2 * k}", x)
        if k < 4:
            x = F.relu(x)
    return x


def spynet(w, ref, supp):
    h, w_ = ref.shape[-2:]
    hu, wu = math.ceil(h / 32) * 32, math.ceil(w_ / 32) * 32
    ref = F.interpolate(ref, size=(hu, wu), mode="bilinear", align_corners=False)
    supp = F.interpolate(supp, size=(hu, wu), mode="bilinear", align_corners=False)
    refs, supps = [(ref - MEAN) / STD], [(supp - MEAN) / STD]
    for _ in range(5):
        refs.insert(0, F.avg_pool2d(refs[0], 2, 2, count_include_pad=False))
        supps.insert(0, F.avg_pool2d(supps[0], 2, 2, count_include_pad=False))
    flow = torch.zeros(ref.shape[0], 2, refs[0].shape[2], refs[0].shape[3])
    for level in range(6):
        if level > 0:
            flow = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
        inp = torch.cat([refs[level], flow_warp(supps[level], flow, "border"), flow], 1)
        flow = spynet_module(w, level, inp) + flow
    flow = F.interpolate(flow, size=(h, w_), mode="bilinear", align_corners=False)
    scale = torch.tensor([w_ / wu, h / hu], dtype=torch.float32).view(1, 2, 1, 1)
    return flow * scale


def trunk(w, name, blocks, x):
    x = F.leaky_relu(conv(w, f"{name}.main.0", x), 0.1)
    for i in range(blocks):
        r = F.relu(conv(w, f"{name}.main.2.{i}.conv1", x))
        x = x + conv(w, f"{name}.main.2.{i}.conv2", r)
    return x


def basicvsr(w, lr, blocks, base="bilinear"):
    """lr: T,3,H,W in [0,1] -> T,3,4H,4W."""
    t, _, h, w_ = lr.shape
    c = w["backward_trunk.main.0.weight"].shape[0]
    flows_backward = [spynet(w, lr[i:i + 1], lr[i + 1:i + 2]) for i in range(t - 1)]
    flows_forward = [spynet(w, lr[i + 1:i + 2], lr[i:i + 1]) for i in range(t - 1)]
    back = [None] * t
    feat = torch.zeros(1, c, h, w_)
    for i in reversed(range(t)):
        if i < t - 1:
            feat = flow_warp(feat, flows_backward[i])
        feat = trunk(w, "backward_trunk", blocks, torch.cat([lr[i:i + 1], feat], 1))
        back[i] = feat
    feat = torch.zeros(1, c, h, w_)
    outs = []
    for i in range(t):
        if i > 0:
            feat = flow_warp(feat, flows_forward[i - 1])
        feat = trunk(w, "forward_trunk", blocks, torch.cat([lr[i:i + 1], feat], 1))
        x = F.leaky_relu(conv(w, "fusion", torch.cat([back[i], feat], 1)), 0.1)
        x = F.leaky_relu(F.pixel_shuffle(conv(w, "upconv1", x), 2), 0.1)
        x = F.leaky_relu(F.pixel_shuffle(conv(w, "upconv2", x), 2), 0.1)
        x = F.leaky_relu(conv(w, "conv_hr", x), 0.1)
        x = conv(w, "conv_last", x)
        up = F.interpolate(lr[i:i + 1], scale_factor=4, mode=base, align_corners=False)
        outs.append(x + up)
    return torch.cat(outs, 0), torch.cat(flows_forward, 0) if t > 1 else None, \
        torch.cat(flows_backward, 0) if t > 1 else None
