// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "vphone",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vphone", targets: ["vphone"]),
        // The parsers, the decryptor and the flash opener as a library, for the fuzzing package in Fuzz/, with the
        // entry points its fuzz targets call (FuzzEntries).
        .library(name: "VPhoneParsers", targets: ["ConfigFormats", "Crypto", "Flash", "FuzzEntries"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // MARK: - C libraries, each wrapped by exactly one Swift module (ARCHITECTURE rule 3)
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // MARK: - The phone
        .target(name: "ConfigFormats", dependencies: ["CLibXML2"]),
        .target(name: "Crypto", dependencies: ["COpenSSL"]),
        .target(name: "PhoneCore", dependencies: ["ConfigFormats", "Crypto"]),
        .target(name: "Transport", dependencies: ["CCurl"]),
        .target(name: "Flash", dependencies: ["CSQLite", "PhoneCore"]),
        .target(name: "Bundled"),
        .target(
            name: "PhoneRuntime",
            dependencies: [
                "PhoneCore", "Transport", "Flash", "Bundled", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "HTTPServing",
            dependencies: [
                .product(name: "FlyingFox", package: "FlyingFox"), .product(name: "FlyingSocks", package: "FlyingFox"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "ControlAPI",
            dependencies: [
                "PhoneRuntime", "PhoneCore", "HTTPServing", .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "FlyingSocks", package: "FlyingFox"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "TestServer",
            dependencies: [
                "Bundled", "HTTPServing", .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "FleetReport", dependencies: [.product(name: "Histogram", package: "hdrhistogram-swift")]),
        .target(
            name: "Fleet",
            dependencies: [
                "PhoneRuntime", "PhoneCore", "Flash", "Transport", "FleetReport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "vphone",
            dependencies: [
                "PhoneRuntime", "PhoneCore", "Flash", "Transport", "ConfigFormats", "Crypto", "ControlAPI",
                "FleetReport", "Fleet", "TestServer", "Bundled",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // mimalloc serves every malloc of the process (libcurl's, libxml2's, Swift's): a fleet allocates and
            // frees for every transfer on its loop threads, where glibc's allocator costs 7–8 % of the CPU
            // (Benchmarks/README.md).
            linkerSettings: [.linkedLibrary("mimalloc", .when(platforms: [.linux]))]
        ),

        // MARK: - Benchmarks (a fleet phone's logic alone: `swift run -c release core-bench TREE`)
        .executableTarget(
            name: "core-bench",
            dependencies: ["PhoneCore", "PhoneRuntime", "Flash"],
            path: "Sources/CoreBench"
        ),

        // MARK: - Fuzzing (Fuzz/ builds the libFuzzer targets on these entries; FuzzRegressionTests replays them)
        .target(name: "FuzzEntries", dependencies: ["ConfigFormats", "Crypto", "Flash"]),

        // MARK: - Tests
        .target(name: "VPhoneTesting", dependencies: ["PhoneCore", "PhoneRuntime", "Transport", "Flash"]),
        .testTarget(name: "ConfigFormatsTests", dependencies: ["ConfigFormats", "PhoneCore"]),
        .testTarget(name: "CryptoTests", dependencies: ["Crypto", "VPhoneTesting"]),
        .testTarget(
            name: "FuzzRegressionTests",
            dependencies: ["FuzzEntries", "ConfigFormats", "Crypto", "Flash"],
            exclude: ["Fixtures"]  // read by path, as the fuzzers read their corpus
        ),
        .testTarget(name: "FleetReportTests", dependencies: ["FleetReport", "PhoneCore"]),
        .testTarget(name: "FleetRunnerTests", dependencies: ["Fleet", "FleetReport"]),
        .testTarget(
            name: "TestServerTests",
            dependencies: [
                "TestServer", "PhoneRuntime", "PhoneCore", "Flash", "Transport", "VPhoneTesting", "Bundled",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ControlAPITests",
            dependencies: [
                "ControlAPI", "PhoneRuntime", "VPhoneTesting", "Flash", "Transport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "PhoneCoreTests", dependencies: ["PhoneCore", "ConfigFormats", "Crypto", "VPhoneTesting"]),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "VPhoneTesting"]),
        .testTarget(name: "FlashTests", dependencies: ["Flash", "VPhoneTesting"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "PhoneRuntime", "Transport", "Flash", "PhoneCore", "VPhoneTesting", "vphone", "TestServer",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
