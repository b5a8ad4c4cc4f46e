"""minivae.vqvae.CodePrior and the VQ-VAE with a learned prior over its codes (van den Oord et al. 2017, §3.2): the
prior's probabilities sum to 1 over every code sequence (enumerated), its logits against a MADE written out in NumPy
(the masks from the degree rule, not from flows.made_masks), the autoregressive property, ancestral sampling's
frequencies against the enumerated probabilities (χ²), fitting on the digits' codes, the ELBO log p(x|z_q) + log p(k)
against its pieces and below the exact log p(x), the VQ-VAE's training unchanged by the prior's term, a step plan,
the device stand-in and checkpoints."""
import itertools
import math

import numpy as np
import pytest

import minivae as mv
from minivae import objectives
from minivae.optim import Adam
from minivae.random import Generator
from minivae.vqvae import VQVAE, CodePrior
from tests.strict_array import assert_device_run_is_the_cpus
from tests.test_vqvae import assert_replay_is_eager


def randomized(prior, seed=0, scale=1.0):
    """The prior with every weight drawn N(0, scale²) (the trained output layer starts at 0: uniform), float64."""
    prior = prior.double()
    rng = np.random.default_rng(seed)
    for p in prior.parameters():
        p.data = rng.normal(0, scale, p.shape)
    return prior


def sequences(n_latent, n_codes):
    return np.array(list(itertools.product(range(n_codes), repeat=n_latent)), dtype=np.int64)


def tiny(seed=0, **kw):
    options = dict(x_dim=6, hidden=(5,), n_latent=2, code_dim=2, n_codes=3, prior_hidden=6)
    options.update(kw)
    return VQVAE(**options, rng=Generator(seed))


def binary(n, seed=2):
    return (np.random.default_rng(seed).random((n, 6)) < 0.4).astype(np.float32)


def numpy_made(prior, codes):
    """log p(k) by hand: input (l, k) has degree l + 1, hidden unit u the degree (u mod max(L − 1, 1)) + 1, input → unit
    where the unit's degree ≥ the input's, unit → output (l, ·) where l + 1 > the unit's; elu; log-softmax per l."""
    L, K, H = prior.n_latent, prior.n_codes, prior.hidden
    w1, b1 = prior.input.weight.numpy(), prior.input.bias.numpy()
    w2, b2 = prior.output.weight.numpy(), prior.output.bias.numpy()
    unit = np.arange(H) % max(L - 1, 1) + 1
    m1 = np.array([[unit[u] >= l + 1 for u in range(H)] for l in range(L) for _ in range(K)], dtype=float)
    m2 = np.array([[l + 1 > unit[u] for l in range(L) for _ in range(K)] for u in range(H)], dtype=float)
    x = np.eye(K)[codes].reshape(len(codes), L * K)
    a = x @ (w1 * m1) + b1
    h = np.where(a > 0, a, np.expm1(np.minimum(a, 0)))
    logits = (h @ (w2 * m2) + b2).reshape(len(codes), L, K)
    log_p = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    return np.take_along_axis(log_p, codes[..., None], axis=-1)[..., 0].sum(axis=-1)


@pytest.mark.parametrize("n_latent, n_codes, hidden", [(3, 3, 7), (1, 4, 3), (2, 5, 2), (4, 2, 9)])
def test_the_probabilities_sum_to_one_over_every_sequence_and_are_the_made_s(n_latent, n_codes, hidden):
    prior = randomized(CodePrior(n_latent, n_codes, hidden, rng=Generator(1)), seed=n_latent * 10 + n_codes, scale=2.0)
    every = sequences(n_latent, n_codes)
    log_p = prior.log_prob(every).numpy()
    assert log_p.shape == (n_codes ** n_latent,)
    assert math.fsum(np.exp(log_p)) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(log_p, numpy_made(prior, every), rtol=1e-12, atol=1e-12)
    assert np.ptp(log_p) > 0.5  # a prior far from uniform: the sum is no accident of equal terms


def test_the_log_probability_s_gradient_is_central_differences_and_finite_at_large_logits():
    prior = randomized(CodePrior(3, 4, 6, rng=Generator(34)), seed=35)
    codes = np.random.default_rng(36).integers(0, 4, (5, 3))

    def log_prob(w1, b1, w2, b2):
        prior.input.weight, prior.input.bias, prior.output.weight, prior.output.bias = w1, b1, w2, b2
        return prior.log_prob(codes)
    weights = [p.numpy().copy() for p in (prior.input.weight, prior.input.bias, prior.output.weight, prior.output.bias)]
    assert mv.gradcheck(log_prob, weights)
    bias = np.where(np.arange(12) % 2 == 0, 1e4, -1e4)  # logits of ±10⁴: log p of −2·10⁴ where a code is out of favour
    tensors = [mv.tensor(w, requires_grad=True) for w in weights[:3]] + [mv.tensor(bias, requires_grad=True)]
    value = log_prob(*tensors)
    value.sum().backward()
    assert np.isfinite(value.numpy()).all() and value.numpy().min() < -1e4
    assert all(np.isfinite(t.grad).all() for t in tensors)


def test_changing_a_code_changes_no_conditional_at_or_before_its_position():
    L, K = 4, 3
    prior = randomized(CodePrior(L, K, 11, rng=Generator(2)), seed=3)
    rng = np.random.default_rng(4)
    for _ in range(10):
        codes = rng.integers(0, K, (1, L))
        logits = prior(codes).numpy()[0]
        for position in range(L):
            changed = codes.copy()
            changed[0, position] = (changed[0, position] + rng.integers(1, K)) % K
            other = prior(changed).numpy()[0]
            np.testing.assert_array_equal(other[:position + 1], logits[:position + 1])  # p(k_j | k_<j), j ≤ l
            if position < L - 1:
                assert not np.allclose(other[position + 1:], logits[position + 1:])  # and the later ones do read it
    np.testing.assert_array_equal(logits[0], prior.output.bias.numpy()[:K])  # k_1 reads nothing: its logits are b₂'s


def test_the_untrained_prior_is_the_uniform_one():
    model = tiny(n_latent=3, n_codes=4)
    every = sequences(3, 4)
    np.testing.assert_allclose(model.code_prior.log_prob(every).numpy(), -3 * math.log(4), rtol=1e-6)
    x = binary(5)
    np.testing.assert_allclose(model.elbo(x).numpy(), tiny(n_latent=3, n_codes=4, prior_hidden=None).elbo(x).numpy(),
                               rtol=1e-6)


def test_ancestral_samples_have_the_enumerated_frequencies():
    L, K, n = 2, 3, 30000
    prior = randomized(CodePrior(L, K, 5, rng=Generator(5)), seed=6, scale=0.6)
    every = sequences(L, K)
    p = np.exp(prior.log_prob(every).numpy())
    codes = prior.sample((n,), Generator(7))
    assert codes.shape == (n, L) and codes.dtype == np.int64
    counts = np.bincount(codes[:, 0] * K + codes[:, 1], minlength=K ** L)
    chi2 = ((counts - n * p) ** 2 / (n * p)).sum()
    assert chi2 < 26.12  # χ²(8) 0.999 quantile
    assert n * p.min() > 20 and p.max() / p.min() > 3  # (every cell expected ≥ 20 times, χ²'s rule ≥ 5; far from uniform)
    np.testing.assert_array_equal(prior.sample((3, 4), Generator(8)), prior.sample((3, 4), Generator(8)))
    assert prior.sample((3, 4), Generator(8)).shape == (3, 4, L)


def test_the_model_samples_from_the_learned_prior():
    """sample decodes the prior's draw of the same rng (not the uniform prior_codes)."""
    model = tiny(seed=9)
    randomized(model.code_prior, seed=10, scale=3.0)
    model.double()
    codes = model.code_prior.sample((4,), Generator(11))
    np.testing.assert_array_equal(model.sample(4, Generator(11)).numpy(), model.decode(codes).mean.numpy())
    assert not np.array_equal(codes, model.prior_codes(4, Generator(11)))


def test_the_elbo_is_log_p_x_given_z_q_plus_log_p_k_and_below_the_exact_log_likelihood():
    """KL(one-hot q ‖ p) = −log p(k): the ELBO is log p(x|z_q) + log p(k); log p(x) = log Σ_s p(x|s) p(s) over all
    K^L sequences s (9 here), which it lies below."""
    model = tiny(seed=12)
    randomized(model.code_prior, seed=13, scale=2.0)
    model.double()
    x = binary(8, seed=14).astype(np.float64)
    codes = model.encode(x)
    log_lik = model.decode(codes).log_prob(mv.tensor(x)).sum(axis=-1).numpy()
    log_prior = numpy_made(model.code_prior, codes)
    np.testing.assert_allclose(model.elbo(x).numpy(), log_lik + log_prior, rtol=1e-12)
    np.testing.assert_allclose(objectives.elbo(model, mv.tensor(x), Generator(1)).numpy(), log_lik + log_prior, rtol=1e-12)
    every = sequences(2, 3)
    per = np.stack([model.decode(np.repeat(s[None], 8, 0)).log_prob(mv.tensor(x)).sum(axis=-1).numpy() for s in every])
    exact = np.logaddexp.reduce(per + numpy_made(model.code_prior, every)[:, None], axis=0)
    elbo = model.elbo(x).numpy()
    assert (elbo <= exact + 1e-12).all() and (elbo < exact).any()


def test_the_loss_adds_the_codes_nll_and_leaves_the_vq_vae_s_training_unchanged():
    """The codes are integers: −log p(k) trains the prior alone, so the VQ-VAE's weights are those of the same model
    trained without it, bit for bit, while the codes' NLL drops below L log K."""
    prototypes = binary(3, seed=15)  # 3 images, so at most 3 code sequences of the 16: much to learn over uniform
    x = [mv.tensor(prototypes[np.random.default_rng(s).integers(0, 3, 16)]) for s in range(16, 20)]

    def trained(prior_hidden, steps=100):
        model = tiny(seed=19, hidden=(16,), n_codes=4, prior_hidden=prior_hidden)
        opt = Adam(model.parameters(), lr=1e-2)
        for i in range(steps):
            loss = model.loss(x[i % 4])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model
    first, plain = tiny(seed=19, hidden=(16,), n_codes=4), tiny(seed=19, hidden=(16,), n_codes=4, prior_hidden=None)
    np.testing.assert_allclose(first.loss(x[0]).item(), plain.loss(x[0]).item() + 2 * math.log(4), rtol=1e-6)
    with_prior, without = trained(6), trained(None)
    vq_state = without.state_dict()
    assert all(k.startswith("code_prior.") for k in with_prior.state_dict().keys() - vq_state.keys())
    for key, value in vq_state.items():
        np.testing.assert_array_equal(with_prior.state_dict()[key], value, err_msg=key)
    codes = np.concatenate([with_prior.encode(xb) for xb in x])
    _, counts = np.unique(codes, axis=0, return_counts=True)
    entropy = -(counts / len(codes) * np.log(counts / len(codes))).sum()  # the codes' NLL's floor, any prior
    assert -with_prior.log_prior(codes).numpy().mean() < (entropy + 2 * math.log(4)) / 2  # half the way there


def test_fitting_on_the_digits_codes_lowers_their_nll_below_l_log_k():
    from minivae.data import batches, load_default
    data = load_default()
    x, held_out = data["train"][:600], data["test"][:200]
    rng = Generator(20)
    model = VQVAE(x_dim=784, hidden=(32,), n_latent=4, code_dim=4, n_codes=16, ema_decay=0.9, prior_hidden=32, rng=rng)
    opt = Adam([p for name, p in model.named_parameters() if not name.startswith("code_prior.")], lr=3e-3)
    for _ in range(4):
        for xb in batches(x, 50, rng=rng):
            loss = model.loss(mv.tensor(xb))
            opt.zero_grad()
            loss.backward()
            opt.step()
    uniform = 4 * math.log(16)
    assert -model.log_prior(model.encode(x)).numpy().mean() == pytest.approx(uniform)  # its term left untrained
    frozen = {k: v.copy() for k, v in model.state_dict().items() if not k.startswith("code_prior.")}
    nll = model.fit_code_prior(x, rng=Generator(21), epochs=8, batch_size=50, lr=3e-3)
    assert len(nll) == 8 and nll[-1] < nll[0] < uniform
    assert nll[-1] == pytest.approx(-model.log_prior(model.encode(x)).numpy().mean(), rel=1e-6)
    assert nll[-1] < uniform - 1.5  # nats a sequence; the codes' empirical entropy bounds it below
    assert -model.log_prior(model.encode(held_out)).numpy().mean() < uniform - 1.0  # and on images it did not see
    for key, value in frozen.items():
        np.testing.assert_array_equal(model.state_dict()[key], value, err_msg=key)  # the VQ-VAE frozen
    elbo_uniform = model.elbo_terms(held_out)[0].numpy() - uniform
    assert model.elbo(held_out).numpy().mean() > elbo_uniform.mean() + 1.0


def test_state_dict_and_a_checkpoint_round_trip_the_prior(tmp_path):
    from minivae.training import load_checkpoint, save_checkpoint
    model = tiny(seed=22, prior_hidden=5)
    randomized(model.code_prior, seed=23)
    model.float()
    assert model.config["prior_hidden"] == 5 and "prior_hidden" not in tiny(prior_hidden=None).config
    other = tiny(seed=24, prior_hidden=5)
    other.load_state_dict(model.state_dict())
    save_checkpoint(tmp_path / "c.npz", model, Adam(model.parameters()), Generator(0), epoch=1, step=2)
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    every, x = sequences(2, 3), binary(5, seed=25)
    for copy in (other, loaded):
        np.testing.assert_array_equal(copy.code_prior.log_prob(every).numpy(), model.code_prior.log_prob(every).numpy())
        np.testing.assert_array_equal(copy.elbo(x).numpy(), model.elbo(x).numpy())
        np.testing.assert_array_equal(copy.sample(6, Generator(26)).numpy(), model.sample(6, Generator(26)).numpy())
    assert not {"code_prior.mask_in", "code_prior.mask_out"} & model.state_dict().keys()  # (rebuilt, not stored)


def test_a_step_and_sampling_on_the_device_are_the_cpus():
    x = binary(4)

    def run(device):
        model = tiny(seed=32)
        randomized(model.code_prior, seed=33)
        model = model.float().to(device)
        loss = model.loss(mv.tensor(x, device=device))
        loss.backward()  # (not the prior's gradient: log_softmax's Numba kernel and NumPy formula differ by an ulp)
        codes = model.code_prior.sample((50,), Generator(27))
        return [loss, mv.tensor(model.codebook.grad), model.code_prior.log_prob(codes), codes,
                model.elbo_terms(mv.tensor(x, device=device))[1], model.sample(3, Generator(28))]
    assert_device_run_is_the_cpus(run)


def test_a_recorded_step_replays_the_eager_steps():
    """A step plan replays the prior's term on each batch's codes, not the recorded batch's."""
    batches = [binary(6, seed=s) for s in (28, 29, 30)]

    assert_replay_is_eager(lambda: tiny(seed=31, prior_hidden=4), batches)


def test_bad_prior_options_are_refused():
    with pytest.raises(ValueError, match="prior_hidden"):
        tiny(prior_hidden=0)
    with pytest.raises(RuntimeError, match="fit_code_prior: this VQVAE has the uniform prior; build it with prior_hidden"):
        tiny(prior_hidden=None).fit_code_prior(binary(4), rng=Generator(0))
    prior = CodePrior(3, 4, 5, rng=Generator(0))
    with pytest.raises(ValueError, match=r"CodePrior: codes need a last axis of L = 3 positions, got shape \(2, 2\)"):
        prior.log_prob(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match=r"one_hot: indices must lie in \[0, 4\)"):
        prior.log_prob(np.array([[0, 4, 1]]))
