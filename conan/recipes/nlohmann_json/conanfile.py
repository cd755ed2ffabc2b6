# nlohmann_json as the system has it (Debian: nlohmann-json3-dev), for building where no Conan
# remote is reachable. Same package name and CMake names as the usual recipe.
import re

from conan import ConanFile
from conan.tools.files import load


class SystemNlohmannJsonConan(ConanFile):
    name = "nlohmann_json"
    package_type = "header-library"
    description = "nlohmann_json, from the system's headers"

    def set_version(self):
        text = load(self, "/usr/include/nlohmann/detail/abi_macros.hpp")
        parts = [re.search(rf"#\s*define\s+NLOHMANN_JSON_VERSION_{p}\s+(\d+)", text).group(1)
                 for p in ("MAJOR", "MINOR", "PATCH")]
        self.version = ".".join(parts)

    def package_id(self):
        self.info.clear()

    def package_info(self):
        self.cpp_info.includedirs = []  # on the default path already
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.set_property("cmake_file_name", "nlohmann_json")
        self.cpp_info.set_property("cmake_target_name", "nlohmann_json::nlohmann_json")
