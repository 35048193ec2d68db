import Bundled
import Foundation
import Testing
import VPhoneTesting

/// The profile and example tree built into the binary must be the files in the repository, byte for byte: run
/// scripts/embed after editing Profiles/KX-UTG300.json or examples/prov.
@Suite struct BundledFilesTests {
    @Test func theBuiltInProfileIsProfilesKXUTG300() throws {
        let onDisk = try String(contentsOfFile: TestProfiles.utg300Path, encoding: .utf8)
        #expect(BundledFiles.profile == onDisk, "run scripts/embed")
    }

    @Test func theBuiltInTreeIsExamplesProv() throws {
        let dir = TestProfiles.repositoryRoot + "/examples/prov"
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(BundledFiles.exampleTree.map(\.name) == names, "run scripts/embed")
        for (name, contents) in BundledFiles.exampleTree {
            #expect(
                contents == (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)),
                "\(name): run scripts/embed"
            )
        }
        #expect(
            BundledFiles.exampleTree.contains { $0.contents.contains(BundledFiles.exampleOrigin + "/ConfigCom.cfg") }
        )
    }
}
