// SPDX-License-Identifier: BSL-1.0
#include "support/tls_certs.hpp"

#include <fstream>
#include <stdexcept>
#include <vector>

namespace qorb::test {

namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string output;
  if (run_command(argv, &output, 30s) != 0) {
    std::string what = "openssl";
    for (const auto& a : args) what.append(" ").append(a);
    what.append(" failed: ").append(output);
    throw std::runtime_error(what);
  }
}

// A self-signed CA named `cn`: `name`.key and `name`.pem in `dir`.
void make_ca(const std::string& dir, const std::string& name, const std::string& cn) {
  const std::string config = dir + "/" + name + ".cnf";
  write_file(config, std::string("[req]\ndistinguished_name = dn\nprompt = no\n") +
                         "x509_extensions = v3_ca\n[dn]\nCN = " + cn +
                         "\n[v3_ca]\nbasicConstraints = critical,CA:TRUE\n"
                         "keyUsage = critical,keyCertSign,cRLSign\n"
                         "subjectKeyIdentifier = hash\n");
  openssl({"req", "-x509", "-config", config, "-newkey", "ec", "-pkeyopt",
           "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3", "-keyout",
           dir + "/" + name + ".key", "-out", dir + "/" + name + ".pem"});
}

// A certificate for `cn` signed by the CA "ca", with extensions `ext`.
void make_leaf(const std::string& dir, const std::string& name, const std::string& cn,
               const std::string& ext) {
  const std::string ext_file = dir + "/" + name + ".ext";
  write_file(ext_file, ext);
  openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-subj", "/CN=" + cn, "-keyout", dir + "/" + name + ".key", "-out",
           dir + "/" + name + ".csr"});
  openssl({"x509", "-req", "-in", dir + "/" + name + ".csr", "-CA", dir + "/ca.pem", "-CAkey",
           dir + "/ca.key", "-CAcreateserial", "-days", "3", "-extfile", ext_file, "-out",
           dir + "/" + name + ".pem"});
}

}  // namespace

test_pki::test_pki() {
  const std::string& d = dir();
  make_ca(d, "ca", "qorb test CA");
  make_ca(d, "other-ca", "qorb untrusted test CA");
  make_leaf(d, "server", "localhost",
            "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1\n");
  make_leaf(d, "client", "qorb test client",
            "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n"
            "extendedKeyUsage = clientAuth\n");
}

}  // namespace qorb::test
