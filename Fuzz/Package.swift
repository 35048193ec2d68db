// swift-tools-version:6.0
// The libFuzzer targets of vphone (issue 7): one executable per reader, each a thin LLVMFuzzerTestOneInput over an
// entry of the main package's FuzzEntries module, started through LLVMFuzzerRunDriver. Build and run them with
// scripts/fuzz, which passes the sanitizer flags; built without -sanitize=fuzzer they do not link.
import PackageDescription

/// Target name -> the folder of its source under Targets/.
let targets: [(name: String, folder: String)] = [
    ("fuzz-config-xml", "ConfigXML"),
    ("fuzz-config-text", "ConfigText"),
    ("fuzz-base64", "Base64"),
    ("fuzz-decrypt", "Decrypt"),
    ("fuzz-flash-image", "FlashImage"),
]

let package = Package(
    name: "vphone-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "vphone", path: "..")],
    targets: [
        .target(name: "CLibFuzzer", path: "Targets/CLibFuzzer"),
        .target(name: "FuzzDriver", dependencies: ["CLibFuzzer"], path: "Targets/FuzzDriver"),
    ]
        + targets.map { target in
            .executableTarget(
                name: target.name,
                dependencies: ["FuzzDriver", .product(name: "VPhoneParsers", package: "vphone")],
                path: "Targets/\(target.folder)"
            )
        },
    swiftLanguageModes: [.v6]
)
