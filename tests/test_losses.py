"""ClipLoss and SigLipLoss: hand-computed values, EC-aware targets, label smoothing, and gradients against
brute-force references (the two-process equivalence is tests/test_loss_distributed.py)."""

import math

import torch
import torch.nn.functional as F

from biotalk.losses import ClipLoss, SigLipLoss, contrastive_loss, ec_targets


def test_plain_infonce_equals_hand_computed_value():
    # Two unit vectors per side; similarities: diag 1, off-diag 0 -> logits [[s, 0], [0, s]].
    dna = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    s = 2.0
    expected = -math.log(math.exp(s) / (math.exp(s) + 1.0))  # same for every row and both directions
    loss = ClipLoss(ec_aware=False)(dna, text, torch.tensor(s))
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)


def test_asymmetric_example_by_hand():
    # dna0 = text0, dna1 halfway between: logits = s * [[1, 0], [c, c]] with c = 1/sqrt(2).
    c = 1 / math.sqrt(2)
    dna = torch.tensor([[1.0, 0.0], [c, c]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    s = 1.0
    logits = [[s, 0.0], [s * c, s * c]]

    def ce(row, target):
        return -(row[target] - math.log(sum(math.exp(v) for v in row)))

    d2t = (ce(logits[0], 0) + ce(logits[1], 1)) / 2
    cols = [[logits[0][0], logits[1][0]], [logits[0][1], logits[1][1]]]
    t2d = (ce(cols[0], 0) + ce(cols[1], 1)) / 2
    loss = ClipLoss(ec_aware=True)(dna, text, torch.tensor(s), torch.tensor([3, 7]))
    assert math.isclose(loss.item(), (d2t + t2d) / 2, rel_tol=1e-6)


def test_shared_ec_pairs_are_soft_positives_by_hand():
    # Items 0 and 1 share an EC: row 0's target is (1/2, 1/2, 0). With all logits equal to zero,
    # every row is uniform over 3, so the soft cross-entropy is log 3 whatever the targets.
    dna = torch.zeros(3, 4)
    text = torch.zeros(3, 4)
    assert math.isclose(ClipLoss()(dna, text, torch.tensor(5.0), torch.tensor([1, 1, 2])).item(), math.log(3), rel_tol=1e-6)
    # A pair sharing an EC that swaps its partners costs nothing extra with EC-aware targets,
    # but is penalised by plain InfoNCE.
    e = torch.eye(3)
    swapped = e[[1, 0, 2]]
    aware = ClipLoss(ec_aware=True)(e, swapped, torch.tensor(10.0), torch.tensor([5, 5, 6]))
    aware_matched = ClipLoss(ec_aware=True)(e, e, torch.tensor(10.0), torch.tensor([5, 5, 6]))
    plain = ClipLoss(ec_aware=False)(e, swapped, torch.tensor(10.0))
    z = math.log(math.exp(10) + 2)  # log-partition of a row [10, 0, 0]
    assert math.isclose(aware.item(), (2 * (z - 5) + (z - 10)) / 3, rel_tol=1e-6)  # rows 0, 1: half the mass on 10
    assert math.isclose(aware.item(), aware_matched.item(), rel_tol=1e-6)
    assert math.isclose(plain.item(), (2 * z + (z - 10)) / 3, rel_tol=1e-6)  # rows 0, 1: all mass on a 0 logit


def test_ec_targets_rows_are_distributions_over_the_same_ec():
    t = ec_targets(torch.tensor([4, 2, 4, 4, 9]))
    assert torch.allclose(t.sum(1), torch.ones(5))
    assert torch.allclose(t[0], torch.tensor([1 / 3, 0, 1 / 3, 1 / 3, 0]))
    assert torch.equal(t, t.t())


def test_ec_aware_reduces_to_plain_infonce_when_all_ecs_differ():
    g = torch.Generator().manual_seed(0)
    dna = F.normalize(torch.randn(8, 5, generator=g), dim=1)
    text = F.normalize(torch.randn(8, 5, generator=g), dim=1)
    scale = torch.tensor(14.3)
    aware = ClipLoss(ec_aware=True)(dna, text, scale, torch.arange(8) * 3)
    plain = ClipLoss(ec_aware=False)(dna, text, scale)
    logits = scale * dna @ text.t()
    reference = (F.cross_entropy(logits, torch.arange(8)) + F.cross_entropy(logits.t(), torch.arange(8))) / 2
    assert torch.allclose(aware, plain) and torch.allclose(plain, reference)


def test_gradient_matches_brute_force_soft_cross_entropy():
    g = torch.Generator().manual_seed(1)
    dna = torch.randn(6, 3, generator=g, requires_grad=True)
    text = torch.randn(6, 3, generator=g, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    ClipLoss()(dna, text, torch.tensor(3.0), labels).backward()
    got = dna.grad.clone(), text.grad.clone()
    dna.grad = text.grad = None
    logits = 3.0 * dna @ text.t()
    total = 0.0
    for i in range(6):  # explicit per-row loops, independent of ec_targets
        pos = [j for j in range(6) if labels[j] == labels[i]]
        total = total - sum(F.log_softmax(logits[i], 0)[j] for j in pos) / len(pos) / 12
        total = total - sum(F.log_softmax(logits[:, i], 0)[j] for j in pos) / len(pos) / 12
    total.backward()
    assert torch.allclose(got[0], dna.grad, atol=1e-6) and torch.allclose(got[1], text.grad, atol=1e-6)


def test_ec_aware_needs_labels():
    import pytest

    with pytest.raises(ValueError, match="labels"):
        ClipLoss()(torch.eye(2), torch.eye(2), torch.tensor(1.0))


def test_siglip_by_hand_with_a_shared_ec():
    # logits = s * cos + b; pairs (0,1) share an EC: positives are (0,0), (0,1), (1,0), (1,1), (2,2).
    dna = torch.eye(3)
    text = torch.eye(3)
    s, b = 2.0, -1.0
    logits = s * torch.eye(3) + b
    positive = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    expected = 0.0
    for i in range(3):
        for j in range(3):
            z = 1.0 if positive[i, j] else -1.0
            expected += -math.log(1 / (1 + math.exp(-z * logits[i, j].item())))
    got = SigLipLoss()(dna, text, torch.tensor(s), torch.tensor([4, 4, 9]), torch.tensor(b))
    assert math.isclose(got.item(), expected / 3, rel_tol=1e-6)


def test_siglip_gradient_matches_brute_force_and_reaches_scale_and_bias():
    g = torch.Generator().manual_seed(2)
    dna = torch.randn(5, 3, generator=g, requires_grad=True)
    text = torch.randn(5, 3, generator=g, requires_grad=True)
    scale, bias = torch.tensor(4.0, requires_grad=True), torch.tensor(-2.0, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2, 1])
    SigLipLoss(label_smoothing=0.2)(dna, text, scale, labels, bias).backward()
    got = [t.grad.clone() for t in (dna, text, scale, bias)]
    for t in (dna, text, scale, bias):
        t.grad = None
    total = 0.0
    for i in range(5):
        for j in range(5):
            y = 0.9 if labels[i] == labels[j] else 0.1  # 0/1 targets smoothed towards 1/2 by 0.2
            p = torch.sigmoid(scale * dna[i] @ text[j] + bias)
            total = total - (y * torch.log(p) + (1 - y) * torch.log(1 - p)) / 5
    total.backward()
    for a, t in zip(got, (dna, text, scale, bias), strict=True):
        assert torch.allclose(a, t.grad, atol=1e-5)


def test_label_smoothing_keeps_a_separated_batch_from_wanting_an_infinite_temperature():
    # A perfectly separated batch: without smoothing the loss keeps falling as the temperature grows (the
    # collapse to zero training loss); with smoothing it has a finite best temperature.
    e = torch.eye(8)
    labels = torch.arange(8)
    for loss in (ClipLoss, SigLipLoss):
        curve = {eps: [loss(label_smoothing=eps)(e, e, torch.tensor(s), labels, torch.tensor(-s / 2)).item()
                       for s in (4.0, 8.0, 16.0)] for eps in (0.0, 0.1)}
        assert curve[0.0][0] > curve[0.0][1] > curve[0.0][2] and curve[0.0][2] < 0.01
        assert curve[0.1][2] > curve[0.1][1] and curve[0.1][2] > 0.1


def test_smoothed_infonce_targets_by_hand():
    e = torch.eye(2)
    s, eps = 3.0, 0.2
    row = F.log_softmax(torch.tensor([s, 0.0]), 0)
    expected = -((1 - eps / 2) * row[0] + eps / 2 * row[1]).item()  # target (0.9, 0.1) on every row
    assert math.isclose(ClipLoss(label_smoothing=eps)(e, e, torch.tensor(s), torch.tensor([0, 1])).item(), expected,
                        rel_tol=1e-6)


def test_loss_names_and_what_siglip_needs():
    import pytest

    assert isinstance(contrastive_loss("siglip", 0.1), SigLipLoss) and contrastive_loss("infonce").ec_aware
    with pytest.raises(ValueError, match="infonce"):
        contrastive_loss("triplet")
    with pytest.raises(ValueError, match="logit_bias"):
        SigLipLoss()(torch.eye(2), torch.eye(2), torch.tensor(1.0), torch.arange(2))
