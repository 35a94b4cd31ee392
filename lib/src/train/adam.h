// Adam for the library's trainers (calibration and training), with its state as a safetensors
// file so that runs resume exactly. Internal: includes ATen.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <string>
#include <vector>

#include "qbasicvsr/error.h"
#include "qbasicvsr/host_tensor.h"
#include "qbasicvsr/model_file.h"

namespace qbasicvsr {

inline HostTensor to_host(const at::Tensor& t) {
  const at::Tensor c = t.detach().contiguous();
  return HostTensor::from_f32(c.sizes().vec(),
                              std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel()));
}

// Adam (Kingma & Ba), eps 1e-8, one learning rate per group; betas 0.9 / 0.999 unless set.
struct Adam {
  double beta1 = 0.9, beta2 = 0.999;
  struct Group {
    std::vector<at::Tensor> params, m, v;
    double lr;
  };
  std::vector<Group> groups;
  int t = 0;
  void add(std::vector<at::Tensor> params, double lr) {
    Group g;
    g.lr = lr;
    for (auto& p : params) {
      g.m.push_back(at::zeros_like(p));
      g.v.push_back(at::zeros_like(p));
    }
    g.params = std::move(params);
    groups.push_back(std::move(g));
  }
  SafetensorsFile state() const {
    SafetensorsFile f;
    f.metadata["t"] = std::to_string(t);
    for (std::size_t g = 0; g < groups.size(); ++g)
      for (std::size_t i = 0; i < groups[g].params.size(); ++i) {
        const std::string k = std::to_string(g) + "." + std::to_string(i);
        f.tensors["m." + k] = to_host(groups[g].m[i]);
        f.tensors["v." + k] = to_host(groups[g].v[i]);
      }
    return f;
  }
  void restore(const SafetensorsFile& f) {
    t = std::stoi(f.metadata.at("t"));
    for (std::size_t g = 0; g < groups.size(); ++g)
      for (std::size_t i = 0; i < groups[g].params.size(); ++i) {
        const std::string k = std::to_string(g) + "." + std::to_string(i);
        for (auto [name, dst] :
             {std::pair{"m." + k, &groups[g].m[i]}, std::pair{"v." + k, &groups[g].v[i]}}) {
          const auto it = f.tensors.find(name);
          if (it == f.tensors.end() || it->second.numel() != dst->numel())
            throw Error("optimizer state does not match the model (" + name + ")");
          const auto values = it->second.to_f32();
          dst->copy_(at::from_blob(const_cast<float*>(values.data()), dst->sizes(), at::kFloat));
        }
      }
  }
  void step(double scale) {
    ++t;
    const double c1 = 1 - std::pow(beta1, t), c2 = 1 - std::pow(beta2, t);
    at::NoGradGuard no_grad;
    for (auto& g : groups)
      for (std::size_t i = 0; i < g.params.size(); ++i) {
        at::Tensor& p = g.params[i];
        if (!p.grad().defined()) continue;
        const at::Tensor grad = p.grad();
        g.m[i].mul_(beta1).add_(grad, 1 - beta1);
        g.v[i].mul_(beta2).addcmul_(grad, grad, 1 - beta2);
        p.addcdiv_(g.m[i] / c1, (g.v[i] / c2).sqrt_().add_(1e-8), -g.lr * scale);
        p.mutable_grad().zero_();
      }
  }
};

}  // namespace qbasicvsr
