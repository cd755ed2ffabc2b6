# Conan 2 recipe for the header-only library. Consumers get the same CMake names as from our own
# install: find_package(workspace CONFIG) and the target workspace::workspace.
import os
import re

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, load
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class WorkspaceConan(ConanFile):
    name = "workspace"
    description = ("Run shell commands and move files in a workspace: this machine, a Docker "
                   "container, an OpenHands agent server or runtime, or a Daytona sandbox")
    license = "MIT"
    topics = ("sandbox", "docker", "daytona", "openhands", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    exports_sources = "include/*", "LICENSE"
    no_copy_source = True

    def set_version(self):
        # One version, kept in the project() call of CMakeLists.txt.
        text = load(self, os.path.join(self.recipe_folder, "CMakeLists.txt"))
        self.version = re.search(r"project\(workspace\s+VERSION\s+([0-9.]+)", text).group(1)

    def export(self):
        copy(self, "CMakeLists.txt", self.recipe_folder, self.export_folder)

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # Ranges that take Debian 12's packages (Asio 1.22, nlohmann_json 3.11, OpenSSL 3.0) as
        # well as current ones. OpenSSL is not optional: every remote workspace speaks https
        # through the one HTTP client, and only LocalWorkspace could do without it.
        self.requires("asio/[>=1.22 <2]", transitive_headers=True)
        self.requires("nlohmann_json/[>=3.11 <4]", transitive_headers=True)
        self.requires("openssl/[>=1.1.1 <4]", transitive_headers=True)

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)
        if self.settings.os not in ("Linux", "FreeBSD", "Macos"):
            raise ConanInvalidConfiguration("workspace needs a POSIX system")

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"),
             os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.set_property("cmake_file_name", "workspace")
        self.cpp_info.set_property("cmake_target_name", "workspace::workspace")
        # As our own install: 0.1 does not accept 0.2.
        self.cpp_info.set_property("cmake_config_version_compat", "SameMinorVersion")
        self.cpp_info.requires = ["asio::asio", "nlohmann_json::nlohmann_json",
                                  "openssl::ssl", "openssl::crypto"]
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
