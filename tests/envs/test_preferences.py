import math

import numpy as np
import pytest
import torch
from torch.distributions import Laplace, Normal

from envs.preferences import CategoricalPreference, Feature, FeatureGoal, ImageGoal


def test_feature_goal_is_a_sum_of_normal_log_densities_over_features():
    goal = FeatureGoal([Feature("x", 0, 1.0, 0.5), Feature("y - z", 1, 0.0, 2.0, minus=2)], 3)
    obs = torch.tensor([[0.3, 1.0, -0.5], [1.0, 0.0, 0.0]])
    x, y_minus_z = obs[:, 0], obs[:, 1] - obs[:, 2]
    expected = Normal(1.0, 0.5).log_prob(x) + Normal(0.0, 2.0).log_prob(y_minus_z)
    torch.testing.assert_close(goal.log_preference(obs), expected)


def test_feature_goal_is_differentiable_for_planning_in_imagination():
    goal = FeatureGoal([Feature("x", 0, 0.0, 1.0)], 2)
    obs = torch.tensor([[2.0, 5.0]], requires_grad=True)
    goal.log_preference(obs).sum().backward()
    torch.testing.assert_close(obs.grad, torch.tensor([[-2.0, 0.0]]))  # d/dx -x²/2 = -x


def test_feature_goal_keeps_leading_dimensions():
    goal = FeatureGoal([Feature("x", 0, 0.0, 1.0)], 2)
    assert goal.log_preference(torch.zeros(4, 7, 2)).shape == (4, 7)
    assert goal.success(np.zeros((4, 7, 2))).shape == (4, 7)


def test_feature_goal_rejects_wrong_sizes():
    with pytest.raises(ValueError, match="outside obs_dim"):
        FeatureGoal([Feature("x", 3, 0.0, 1.0)], 2)
    with pytest.raises(ValueError, match="observations of size 2"):
        FeatureGoal([Feature("x", 0, 0.0, 1.0)], 2).log_preference(np.zeros(3))


def _images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(2, 3, 8, 8), dtype=np.uint8)


def test_image_goal_is_a_laplace_mixture_over_goal_images():
    goals = _images()
    pref = ImageGoal(goals, scale=0.2)
    obs = torch.as_tensor(goals[1]).float()
    per_goal = [
        Laplace(torch.as_tensor(g).float() / 255, 0.2).log_prob(obs / 255).sum() for g in goals
    ]
    expected = torch.logsumexp(torch.stack(per_goal), 0) - math.log(2)
    torch.testing.assert_close(pref.log_preference(goals[1]), expected)


def test_image_goal_prefers_images_near_a_goal():
    goals = _images()
    pref = ImageGoal(goals)
    noisy = np.clip(goals[0].astype(int) + 3, 0, 255).astype(np.uint8)
    far = pref.far_observation()
    scores = pref.log_preference(np.stack([goals[0], noisy, far]))
    assert scores[0] > scores[1] > scores[2]
    assert pref.success(np.stack([goals[1], noisy, far])).tolist() == [True, True, False]


def test_categorical_preference_is_log_softmax_of_c():
    C = [np.array([0.0, 2.0, -3.0]), np.zeros(4)]
    pref = CategoricalPreference(C, goal_modality=0, goal_outcomes=[1], goal=[1, 0], far=[2, 0])
    expected = torch.log_softmax(torch.tensor(C[0]), 0)[1] - math.log(4)
    torch.testing.assert_close(pref.log_preference(np.array([1, 3])), expected)
    assert pref.log_preference(torch.tensor([[1, 0], [2, 0], [0, 1]])).shape == (3,)
