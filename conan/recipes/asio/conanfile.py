# Standalone Asio as the system has it (Debian: libasio-dev), for building where no Conan remote
# is reachable. Same package name, CMake names and define as the usual asio recipe.
import re

from conan import ConanFile
from conan.tools.files import load


class SystemAsioConan(ConanFile):
    name = "asio"
    package_type = "header-library"
    description = "Standalone Asio, from the system's headers"

    def set_version(self):
        text = load(self, "/usr/include/asio/version.hpp")
        v = int(re.search(r"#\s*define\s+ASIO_VERSION\s+(\d+)", text).group(1))
        self.version = f"{v // 100000}.{v // 100 % 1000}.{v % 100}"

    def package_id(self):
        self.info.clear()

    def package_info(self):
        # The headers are on the compiler's default path; naming /usr/include would break
        # libstdc++'s #include_next.
        self.cpp_info.includedirs = []
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.defines = ["ASIO_STANDALONE"]
        self.cpp_info.set_property("cmake_file_name", "asio")
        self.cpp_info.set_property("cmake_target_name", "asio::asio")
