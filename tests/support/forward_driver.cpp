// Runs the C++ network on a .npy clip for the Python reference comparison:
//   forward_driver MODEL IN.npy OUT.npy [FLOWS_FWD.npy FLOWS_BWD.npy]
#include <cstdio>

#include "net/basicvsr.h"
#include "npy.h"
#include "qbasicvsr/runtime.h"

int main(int argc, char** argv) {
  using namespace qbasicvsr;
  if (argc != 4 && argc != 6) {
    std::fprintf(stderr, "usage: forward_driver MODEL IN.npy OUT.npy [FLOWS_FWD.npy FLOWS_BWD.npy]\n");
    return 2;
  }
  try {
    configure_runtime(0);
    const BasicVSR net(load_model(argv[1]));
    auto in = test::read_npy(argv[2]);
    const at::Tensor lr = at::from_blob(in.data.data(), in.shape, at::kFloat);
    const at::Tensor out = net.forward(lr).contiguous();
    test::write_npy(argv[3], out.sizes().vec(), out.data_ptr<float>());
    if (argc == 6) {
      c10::InferenceMode guard;
      const auto [fwd, bwd] = net.compute_flows(lr);
      const at::Tensor f = fwd.contiguous(), b = bwd.contiguous();
      test::write_npy(argv[4], f.sizes().vec(), f.data_ptr<float>());
      test::write_npy(argv[5], b.sizes().vec(), b.data_ptr<float>());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forward_driver: %s\n", e.what());
    return 1;
  }
  return 0;
}
