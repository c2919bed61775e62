// Optimizers and schedules against torch.optim trajectories (tests/fixtures/optim).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "layers/optim.h"
#include "layers/schedule.h"
#include "tensor/atomic_file.h"
#include "tensor/json.h"
#include "tensor/npy.h"

using namespace scalpel;
using namespace scalpel::nn;

namespace {

std::string case_dir(const std::string& name) { return std::string(SCALPEL_FIXTURES) + "/optim/" + name; }
Tensor npy(const std::string& c, const std::string& file) { return load_npy(case_dir(c) + "/" + file + ".npy"); }
Json meta(const std::string& c) { return Json::parse(read_file(case_dir(c) + "/meta.json"), c); }

double opt_number(const Json& group, const char* key, double fallback) {
  const Json* v = group.find(key);
  return v && v->is_number() ? v->as_number() : fallback;
}

// Builds the optimizer a fixture describes over {weight, bias}.
std::unique_ptr<Optimizer> make_optimizer(const Json& m, const Tensor& weight, const Tensor& bias) {
  std::vector<ParamGroup> groups;
  for (const Json& g : m.at("param_groups").as_array()) {
    ParamGroup pg;
    for (const Json& name : g.at("params").as_array()) pg.params.push_back(name.as_string() == "weight" ? weight : bias);
    pg.lr = g.at("lr").as_number();
    pg.weight_decay = opt_number(g, "weight_decay", 0);
    groups.push_back(pg);
  }
  const Json& g0 = m.at("param_groups")[0];
  const std::string kind = m.at("optimizer").as_string();
  if (kind == "sgd") {
    SGDOptions o;
    o.momentum = opt_number(g0, "momentum", 0);
    o.dampening = opt_number(g0, "dampening", 0);
    o.nesterov = g0.contains("nesterov") && g0.at("nesterov").as_bool();
    return std::make_unique<SGD>(groups, o);
  }
  if (kind == "adam" || kind == "adamw") {
    AdamOptions o;
    o.beta1 = g0.at("betas")[0].as_number();
    o.beta2 = g0.at("betas")[1].as_number();
    o.eps = g0.at("eps").as_number();
    o.decoupled_weight_decay = kind == "adamw";
    return std::make_unique<Adam>(groups, o);
  }
  RMSpropOptions o;
  o.momentum = opt_number(g0, "momentum", 0);
  o.eps = g0.at("eps").as_number();
  if (kind == "rmsprop_tf") {
    o.tf_style = true;
    o.alpha = g0.at("rho").as_number();
    o.ms_init = g0.at("ms_init").as_number();
  } else {
    o.alpha = g0.at("alpha").as_number();
    o.centered = g0.at("centered").as_bool();
  }
  return std::make_unique<RMSprop>(groups, o);
}

class OptimizerParity : public testing::TestWithParam<std::string> {};

TEST_P(OptimizerParity, MatchesTorchForTenSteps) {
  const std::string c = GetParam();
  Json m = meta(c);
  Tensor x = npy(c, "data_x"), y = npy(c, "data_y");
  Tensor weight = npy(c, "init.weight").set_requires_grad();
  Tensor bias = npy(c, "init.bias").set_requires_grad();
  auto opt = make_optimizer(m, weight, bias);
  Tensor losses = npy(c, "loss"), weights = npy(c, "weight"), biases = npy(c, "bias");
  const Json* clip = m.find("clip");
  for (int64_t step = 0; step < 10; ++step) {
    opt->zero_grad();
    Tensor diff = add(matmul(x, transpose(weight, 0, 1)), bias) - y;
    Tensor loss = mean(diff * diff);
    EXPECT_NEAR(loss.item(), losses.at({step}), 1e-12 + 1e-10 * std::abs(losses.at({step}))) << c << " step " << step;
    backward(loss);
    if (clip && !clip->is_null()) {
      if (clip->at("mode").as_string() == "norm") {
        double norm = clip_grad_norm({weight, bias}, clip->at("max_norm").as_number());
        EXPECT_NEAR(norm, npy(c, "grad_norm").at({step}), 1e-10);
      } else {
        clip_grad_value({weight, bias}, clip->at("clip_value").as_number());
      }
    }
    EXPECT_LT(ops::max_abs_diff(weight.grad(), npy(c, "grad.weight").select(0, step)), 1e-10) << c << " step " << step;
    opt->step();
    EXPECT_LT(ops::max_abs_diff(weight, weights.select(0, step)), 1e-9) << c << " step " << step;
    EXPECT_LT(ops::max_abs_diff(bias, biases.select(0, step)), 1e-9) << c << " step " << step;
  }
}

// Fixture case names; schedules (sched_*) or optimizers (the rest).
std::vector<std::string> cases(bool schedules) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(SCALPEL_FIXTURES) + "/optim"))
    if (e.is_directory() && e.path().filename().string().starts_with("sched_") == schedules)
      out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

// gtest names allow only letters, digits and '_'.
std::string test_name(const testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Torch, OptimizerParity, testing::ValuesIn(cases(false)), test_name);

TEST(Optimizer, StateRoundTripResumesExactly) {
  auto run = [](int steps_before, bool reload) {
    Tensor w = Tensor::from_vector({1, -2, 3}, {3}, DType::F64).set_requires_grad();
    auto make = [&] { return std::make_unique<Adam>(std::vector<ParamGroup>{{{w}, 0.1, 0.01}}); };
    auto opt = make();
    for (int i = 0; i < 6; ++i) {
      if (reload && i == steps_before) {
        auto state = opt->state_dict();
        opt = make();
        opt->load_state_dict(state);
      }
      opt->zero_grad();
      backward(sum(w * w * w));
      opt->step();
    }
    return w.to_vector();
  };
  EXPECT_EQ(run(3, true), run(3, false));
}

TEST(Optimizer, SkipsParametersWithoutGradient) {
  Tensor a = Tensor::ones({2}, DType::F64).set_requires_grad();
  Tensor b = Tensor::ones({2}, DType::F64).set_requires_grad();
  SGD opt({{{a, b}, 0.5}});
  backward(sum(a * 2.0));
  opt.step();
  EXPECT_EQ(a.to_vector(), (std::vector<double>{0, 0}));
  EXPECT_EQ(b.to_vector(), (std::vector<double>{1, 1}));
}

// ---- schedules ----

class ScheduleParity : public testing::TestWithParam<std::string> {};

TEST_P(ScheduleParity, LearningRatePerStepMatchesTorch) {
  const std::string c = GetParam();
  Json m = meta(c);
  const std::string kind = m.at("schedule").as_string();
  const double base = m.at("base_lr").as_number();
  Tensor lr = npy(c, "lr");
  std::unique_ptr<Schedule> s;
  ReduceOnPlateau* plateau = nullptr;
  if (kind == "step") s = std::make_unique<StepSchedule>(m.at("step_size").as_int(), m.at("gamma").as_number());
  else if (kind == "multistep") {
    std::vector<int64_t> ms;
    for (const Json& v : m.at("milestones").as_array()) ms.push_back(v.as_int());
    s = std::make_unique<MultiStepSchedule>(ms, m.at("gamma").as_number());
  } else if (kind == "exponential") s = std::make_unique<ExponentialSchedule>(m.at("gamma").as_number());
  else if (kind == "warmup_cosine")
    s = std::make_unique<WarmupCosineSchedule>(m.at("warmup_steps").as_int(), m.at("total_steps").as_int(),
                                               m.at("min_lr").as_number() / base);
  else if (kind == "cosine_annealing")
    s = std::make_unique<WarmupCosineSchedule>(0, m.at("t_max").as_int(), m.at("eta_min").as_number() / base);
  else if (kind == "one_cycle") {
    OneCycleOptions o;
    o.total_steps = m.at("total_steps").as_int();
    o.pct_start = m.at("pct_start").as_number();
    o.cos_anneal = m.at("anneal_strategy").as_string() == "cos";
    o.div_factor = m.at("div_factor").as_number();
    o.final_div_factor = m.at("final_div_factor").as_number();
    o.three_phase = m.at("three_phase").as_bool();
    o.base_momentum = m.at("base_momentum").as_number();
    o.max_momentum = m.at("max_momentum").as_number();
    s = std::make_unique<OneCycleSchedule>(o);
  } else if (kind == "reduce_on_plateau") {
    PlateauOptions o;
    o.maximize = m.at("mode").as_string() == "max";
    o.factor = m.at("factor").as_number();
    o.patience = m.at("patience").as_int();
    o.threshold = m.at("threshold").as_number();
    o.relative_threshold = m.at("threshold_mode").as_string() == "rel";
    o.cooldown = m.at("cooldown").as_int();
    o.min_factor = m.at("min_lr").as_number() / base;
    auto p = std::make_unique<ReduceOnPlateau>(o);
    plateau = p.get();
    s = std::move(p);
  } else {
    FAIL() << "unknown schedule in fixture: " << kind;
  }
  const double peak = kind == "one_cycle" ? m.at("max_lr").as_number() : base;
  for (int64_t t = 0; t < lr.numel(); ++t) {
    EXPECT_NEAR(peak * s->factor(t), lr.at({t}), 1e-12) << c << " step " << t;
    if (kind == "one_cycle") EXPECT_NEAR(*s->momentum(t), npy(c, "momentum").at({t}), 1e-12) << c << " step " << t;
    if (plateau) plateau->observe(npy(c, "metric").at({t}));
  }
}

INSTANTIATE_TEST_SUITE_P(Torch, ScheduleParity, testing::ValuesIn(cases(true)), test_name);

TEST(Schedule, ParseSpecs) {
  EXPECT_NEAR(parse_schedule("step:2:0.5", 10)->factor(5), 0.25, 1e-15);
  EXPECT_NEAR(parse_schedule("multistep:2,4:0.1", 10)->factor(4), 0.01, 1e-15);
  EXPECT_NEAR(parse_schedule("cosine", 10)->factor(0), 1.0, 1e-15);
  EXPECT_NEAR(parse_schedule("cosine:2", 10)->factor(0), 0.5, 1e-15);
  EXPECT_THROW(parse_schedule("warp", 10), Error);
  EXPECT_THROW(parse_schedule("step:x", 10), Error);
}

TEST(Schedule, ApplyScalesEachGroupFromItsInitialLr) {
  Tensor a = Tensor::ones({1}, DType::F64).set_requires_grad(), b = Tensor::ones({1}, DType::F64).set_requires_grad();
  SGD opt({{{a}, 0.01}, {{b}, 0.1}});
  StepSchedule s(1, 0.5);
  s.apply(opt, 2);
  EXPECT_NEAR(opt.groups()[0].lr, 0.0025, 1e-15);
  EXPECT_NEAR(opt.groups()[1].lr, 0.025, 1e-15);
}

}  // namespace
