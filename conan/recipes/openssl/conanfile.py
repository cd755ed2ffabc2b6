# OpenSSL as the system has it (Debian: libssl-dev), for building where no Conan remote is
# reachable. Same package name, components (ssl, crypto) and CMake names as the usual recipe.
import re

from conan import ConanFile
from conan.tools.files import load


class SystemOpenSSLConan(ConanFile):
    name = "openssl"
    package_type = "shared-library"
    settings = "os", "arch"
    description = "OpenSSL, from the system's libraries"

    def set_version(self):
        text = load(self, "/usr/include/openssl/opensslv.h")
        parts = [re.search(rf"#\s*define\s+OPENSSL_VERSION_{p}\s+(\d+)", text).group(1)
                 for p in ("MAJOR", "MINOR", "PATCH")]
        self.version = ".".join(parts)

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "OpenSSL")
        self.cpp_info.set_property("cmake_find_mode", "both")
        for component, lib, target in (("crypto", "crypto", "OpenSSL::Crypto"), ("ssl", "ssl", "OpenSSL::SSL")):
            c = self.cpp_info.components[component]
            c.includedirs = []  # on the default path already
            c.bindirs = []
            c.libdirs = []
            c.system_libs = [lib]
            c.set_property("cmake_target_name", target)
        self.cpp_info.components["ssl"].requires = ["crypto"]
