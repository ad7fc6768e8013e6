//! Images: `berth image import|ls|rm|inspect` and `berth run IMAGE` on an overlay
//! root. Images are built with `umoci` from a busybox-static root, or written here
//! byte by byte when they must be broken on purpose.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_e2e::{busybox_rootfs, umoci, Env};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// An OCI layout at `<base>/oci` (tag `latest`) of one layer: a busybox root with
/// an /etc/passwd, and a config with Cmd, Env and WorkingDir.
fn busybox_layout(env: &Env) -> PathBuf {
    let root = env.base.join("bbroot");
    busybox_rootfs(&root);
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    let layout = env.base.join("oci");
    let image = format!("{}:latest", layout.display());
    umoci(&["init", "--layout", layout.to_str().unwrap()]);
    umoci(&["new", "--image", &image]);
    umoci(&["insert", "--image", &image, root.to_str().unwrap(), "/"]);
    umoci(&[
        "config",
        "--image",
        &image,
        "--config.cmd",
        "sh",
        "--config.cmd",
        "-c",
        "--config.cmd",
        "echo from-cmd $FOO $(pwd) $(id -u)",
        "--config.env",
        "FOO=image",
        "--config.workingdir",
        "/work",
    ]);
    layout
}

fn import(env: &Env, src: &Path, name: &str) -> String {
    env.berth(&["image", "import", "--name", name, src.to_str().unwrap()])
        .ok()
}

/// Files and dirs under the image store's blobs, layers and tmp.
fn stored(env: &Env) -> Vec<String> {
    let mut v = Vec::new();
    for d in ["blobs/sha256", "layers", "tmp"] {
        if let Ok(rd) = std::fs::read_dir(env.data.join("images").join(d)) {
            for e in rd.flatten() {
                v.push(format!("{d}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    v
}

fn image_names(env: &Env) -> Vec<String> {
    let out = env.berth(&["image", "ls", "--format", "json"]).ok();
    out.lines()
        .flat_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["RepoTags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn umoci_busybox_image_runs() {
    let env = Env::new("imr");
    let layout = busybox_layout(&env);
    let out = import(&env, &layout, "berth-test/bb");
    assert_eq!(out, "Loaded image: docker.io/berth-test/bb:latest\n");
    let ls = env.berth(&["image", "ls"]).ok();
    assert!(
        ls.lines().nth(1).unwrap().starts_with("berth-test/bb "),
        "{ls}"
    );

    // The image's Cmd, Env and WorkingDir (created, as Docker does).
    let c = env.name("a");
    let out = env.berth(&["run", "--rm", "--name", &c, "berth-test/bb"]);
    assert_eq!(out.ok(), "from-cmd image /work 0\n");
    // Docker's form: the command after the image replaces Cmd; flags override.
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &c,
        "-e",
        "FOO=flag",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "berth-test/bb:latest",
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u); cat /marker",
    ]);
    assert_eq!(out.ok(), "flag /tmp 65534\nbusybox-root\n");
    // `IMAGE -- CMD`, by id prefix, exit code kept.
    let id = env.berth(&["image", "ls", "-q"]).ok().trim().to_owned();
    assert_eq!(id.len(), 12);
    let out = env.berth(&["run", "--rm", "--name", &c, &id, "--", "sh", "-c", "exit 7"]);
    out.code(7);
    // An unknown image says how to run on the default root.
    let out = env.berth(&["run", "--rm", "--name", &c, "nosuch", "true"]);
    out.code(125);
    out.one_line_error(&["no such image", "berth run -- nosuch true"]);

    let v: Value =
        serde_json::from_str(&env.berth(&["image", "inspect", "berth-test/bb"]).ok()).unwrap();
    assert_eq!(v[0]["RepoTags"], json!(["docker.io/berth-test/bb:latest"]));
    assert_eq!(v[0]["Config"]["WorkingDir"], "/work");
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);

    // The same layout as a tar imports too, to the same image.
    let tar = env.base.join("oci.tar");
    let st = Command::new("tar")
        .args([
            "-C",
            layout.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    import(&env, &tar, "berth-test/bb2");
    assert_eq!(
        env.berth(&["image", "ls", "-q"]).ok().lines().count(),
        1,
        "one image, two names"
    );
    let out = env.berth(&["image", "rm", "berth-test/bb2"]).ok();
    assert_eq!(out, "Untagged: docker.io/berth-test/bb2:latest\n");
    let out = env.berth(&["image", "rm", "berth-test/bb"]).ok();
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(stored(&env), Vec::<String>::new(), "store emptied");
    env.finish();
}

#[test]
fn three_layers_whiteouts_and_opaque_dir() {
    let env = Env::new("iml");
    let layout = busybox_layout(&env);
    let image = format!("{}:latest", layout.display());
    let l = env.base.join("l");
    std::fs::create_dir_all(l.join("a")).unwrap();
    std::fs::create_dir_all(l.join("d")).unwrap();
    std::fs::write(l.join("a/keep"), "keep\n").unwrap();
    std::fs::write(l.join("a/gone"), "gone\n").unwrap();
    std::fs::write(l.join("d/old"), "old\n").unwrap();
    std::fs::write(l.join("f"), "one\n").unwrap();
    umoci(&[
        "insert",
        "--image",
        &image,
        l.join("a").to_str().unwrap(),
        "/a",
    ]);
    umoci(&[
        "insert",
        "--image",
        &image,
        l.join("d").to_str().unwrap(),
        "/d",
    ]);
    umoci(&[
        "insert",
        "--image",
        &image,
        l.join("f").to_str().unwrap(),
        "/f",
    ]);
    // Upper layers: delete a file and replace another; replace a whole directory.
    std::fs::write(l.join("f2"), "two\n").unwrap();
    umoci(&["insert", "--image", &image, "--whiteout", "/a/gone"]);
    umoci(&[
        "insert",
        "--image",
        &image,
        l.join("f2").to_str().unwrap(),
        "/f",
    ]);
    std::fs::create_dir_all(l.join("nd")).unwrap();
    std::fs::write(l.join("nd/new"), "new\n").unwrap();
    umoci(&[
        "insert",
        "--image",
        &image,
        "--opaque",
        l.join("nd").to_str().unwrap(),
        "/d",
    ]);
    import(&env, &layout, "berth-test/layers");
    let v: Value =
        serde_json::from_str(&env.berth(&["image", "inspect", "berth-test/layers"]).ok()).unwrap();
    let paths: Vec<PathBuf> = v[0]["LayerPaths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    assert!(paths.len() >= 3, "{paths:?}");
    // On disk the deletion is an overlay whiteout: a character device 0:0.
    let wh = paths
        .iter()
        .map(|p| p.join("a/gone"))
        .find_map(|p| {
            std::fs::symlink_metadata(&p)
                .ok()
                .filter(|m| m.file_type().is_char_device())
        })
        .expect("a whiteout for /a/gone in some layer");
    assert_eq!(wh.rdev(), 0);

    let c = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &c,
        "berth-test/layers",
        "sh",
        "-c",
        "ls /a; echo -; ls /d; echo -; cat /f; cat /d/new",
    ]);
    assert_eq!(out.ok(), "keep\n-\nnew\n-\ntwo\nnew\n");
    env.berth(&["image", "rm", "berth-test/layers"]).ok();
    env.finish();
}

#[test]
fn writes_land_in_the_container_only() {
    let env = Env::new("imw");
    let layout = busybox_layout(&env);
    import(&env, &layout, "berth-test/bb");
    let layers_before = tree(&env.data.join("images/layers"));

    // One container writes, deletes and replaces; the layers stay as they were.
    let c1 = env.name("a");
    let out = env.berth(&[
        "run",
        "--name",
        &c1,
        "berth-test/bb",
        "sh",
        "-c",
        "echo changed > /marker; echo x > /new; rm /bin/ls; cat /marker",
    ]);
    assert_eq!(out.ok(), "changed\n");
    assert_eq!(tree(&env.data.join("images/layers")), layers_before);
    let upper = env.data.join("containers").join(&c1).join("rw/upper");
    assert_eq!(std::fs::read_to_string(upper.join("new")).unwrap(), "x\n");
    assert!(std::fs::symlink_metadata(upper.join("bin/ls"))
        .unwrap()
        .file_type()
        .is_char_device());

    // Two running containers on one image see only their own writes.
    let a = env.name("b");
    let b = env.name("c");
    for n in [&a, &b] {
        env.berth(&["run", "-d", "--name", n, "berth-test/bb", "sleep", "1000"])
            .ok();
    }
    env.berth(&["exec", &a, "--", "sh", "-c", "echo a > /w"])
        .ok();
    let out = env.berth(&[
        "exec",
        &b,
        "--",
        "sh",
        "-c",
        "cat /w 2>/dev/null || echo none; echo b > /w; cat /marker",
    ]);
    assert_eq!(out.ok(), "none\nbusybox-root\n");
    assert_eq!(env.berth(&["exec", &a, "--", "cat", "/w"]).ok(), "a\n");
    assert_eq!(env.berth(&["exec", &b, "--", "cat", "/w"]).ok(), "b\n");
    assert_eq!(tree(&env.data.join("images/layers")), layers_before);

    // Refused while in use, by name or by id; allowed once the containers are gone.
    let out = env.berth(&["image", "rm", "berth-test/bb"]);
    out.code(1);
    out.one_line_error(&["in use", &c1]);
    for n in [&c1, &a, &b] {
        env.berth(&["rm", "-f", n]).ok();
    }
    env.berth(&["image", "rm", "berth-test/bb"]).ok();
    env.finish();
}

#[test]
fn image_containers_get_hostname_hosts_and_resolv_conf() {
    let env = Env::new("ime");
    let layout = busybox_layout(&env);
    import(&env, &layout, "berth-test/bb");
    let show = "cat /etc/hostname; grep -c h1 /etc/hosts; test -f /etc/resolv.conf && echo resolv";
    for extra in [&[][..], &["--read-only"]] {
        let mut args = vec!["run", "--rm", "--hostname", "h1"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["berth-test/bb", "sh", "-c", show]);
        assert_eq!(env.berth(&args).ok(), "h1\n1\nresolv\n", "{extra:?}");
    }
    // A file of the caller's at one of them wins.
    let mine = env.base.join("myhosts");
    std::fs::write(&mine, "10.0.0.1 mine\n").unwrap();
    let vol = format!("{}:/etc/hosts:ro", mine.display());
    let out = env.berth(&[
        "run",
        "--rm",
        "-v",
        &vol,
        "berth-test/bb",
        "cat",
        "/etc/hosts",
    ]);
    assert_eq!(out.ok(), "10.0.0.1 mine\n");
    env.berth(&["image", "rm", "berth-test/bb"]).ok();
    env.finish();
}

#[test]
fn a_restarted_container_keeps_what_it_wrote() {
    let env = Env::new("imr");
    let layout = busybox_layout(&env);
    import(&env, &layout, "berth-test/bb");
    let name = env.name("c");
    // Each run prints how many ran before it, and counts itself.
    let count = "n=$(cat /count 2>/dev/null || echo 0); echo $n; echo $((n + 1)) > /count";
    let out = env.berth(&["run", "--name", &name, "berth-test/bb", "sh", "-c", count]);
    assert_eq!(out.ok(), "0\n");
    for want in ["1\n", "2\n"] {
        assert_eq!(env.berth(&["start", "-a", &name]).ok(), want);
    }
    assert_eq!(env.berth(&["logs", &name]).ok(), "0\n1\n2\n");
    env.berth(&["rm", &name]).ok();
    env.berth(&["image", "rm", "berth-test/bb"]).ok();
    env.finish();
}

/// Every path under `dir` with its size and mode, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            v.push(format!("{} {} {:o}", e.path().display(), m.len(), m.mode()));
        }
    }
    v.sort();
    v
}

// ---- hand-made images, broken on purpose ----

/// One tar entry: a regular file, a directory or a symlink, or anything else
/// through [`Entry::Full`].
enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Link(&'a str, &'a str),
    Full(Full<'a>),
}

/// Every field of an entry.
#[derive(Default)]
struct Full<'a> {
    name: &'a str,
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    data: &'a [u8],
    link: &'a str,
    dev: (u32, u32),
    xattrs: &'a [(&'a str, &'a [u8])],
}

fn header(out: &mut Vec<u8>, e: &Full<'_>, size: usize) {
    let mut h = [0u8; 512];
    h[..e.name.len()].copy_from_slice(e.name.as_bytes());
    h[100..108].copy_from_slice(format!("{:07o}\0", e.mode).as_bytes());
    h[108..116].copy_from_slice(format!("{:07o}\0", e.uid).as_bytes());
    h[116..124].copy_from_slice(format!("{:07o}\0", e.gid).as_bytes());
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = e.kind;
    h[157..157 + e.link.len()].copy_from_slice(e.link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[329..337].copy_from_slice(format!("{:07o}\0", e.dev.0).as_bytes());
    h[337..345].copy_from_slice(format!("{:07o}\0", e.dev.1).as_bytes());
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
}

fn tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let full = match e {
            Entry::File(n, d) => Full {
                name: n,
                kind: b'0',
                mode: 0o644,
                data: d,
                ..Full::default()
            },
            Entry::Dir(n) => Full {
                name: n,
                kind: b'5',
                mode: 0o755,
                ..Full::default()
            },
            Entry::Link(n, t) => Full {
                name: n,
                kind: b'2',
                mode: 0o777,
                link: t,
                ..Full::default()
            },
            Entry::Full(f) => Full { ..*f },
        };
        if !full.xattrs.is_empty() {
            // A PAX header carrying the xattrs, as GNU tar --xattrs writes them.
            let mut pax = Vec::new();
            for (k, v) in full.xattrs {
                let body = [format!(" SCHILY.xattr.{k}=").as_bytes(), v, b"\n"].concat();
                let mut len = body.len() + 1;
                while format!("{len}").len() + body.len() != len {
                    len = format!("{len}").len() + body.len();
                }
                pax.extend_from_slice(format!("{len}").as_bytes());
                pax.extend_from_slice(&body);
            }
            let x = Full {
                name: "PaxHeader",
                kind: b'x',
                mode: 0o644,
                ..Full::default()
            };
            header(&mut out, &x, pax.len());
            out.extend_from_slice(&pax);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        header(&mut out, &full, full.data.len());
        out.extend_from_slice(full.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// An OCI layout of one uncompressed layer `layer`, with `layer_type` as its media
/// type; returns its dir.
fn oci_layout(dir: &Path, layer: &[u8], layer_type: &str) -> PathBuf {
    oci_layout_n(dir, &[(layer.to_vec(), sha(layer), layer_type)])
}

/// An OCI layout of layers given as (blob, diff id hex, media type), bottom first.
fn oci_layout_n(dir: &Path, layers: &[(Vec<u8>, String, &str)]) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let h = sha(b);
        std::fs::write(blobs.join(&h), b).unwrap();
        (format!("sha256:{h}"), b.len())
    };
    let mut descs = Vec::new();
    let mut diffs = Vec::new();
    for (blob, diff, media) in layers {
        let (d, n) = put(blob);
        descs.push(json!({"mediaType": media, "digest": d, "size": n}));
        diffs.push(format!("sha256:{diff}"));
    }
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diffs},
    });
    let (cd, cs) = put(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs,
    });
    let (md, ms) = put(manifest.to_string().as_bytes());
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir.to_path_buf()
}

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

#[track_caller]
fn refused(env: &Env, src: &Path, needles: &[&str]) {
    let out = env.berth(&[
        "image",
        "import",
        "--name",
        "berth-test/bad",
        src.to_str().unwrap(),
    ]);
    out.code(1);
    out.one_line_error(needles);
    assert_eq!(stored(env), Vec::<String>::new(), "nothing stored");
    assert_eq!(image_names(env), Vec::<String>::new());
}

#[test]
fn escaping_and_broken_images_are_refused() {
    let env = Env::new("imb");
    let outside = env.base.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // `..` in a path.
    let l = tar(&[
        Entry::Dir("etc/"),
        Entry::File("etc/../../../../pwned", b"x"),
    ]);
    refused(
        &env,
        &oci_layout(&env.base.join("dotdot"), &l, TAR),
        &["escapes", "`..`"],
    );
    // Through a symlink in the layer that leads out of it.
    let l = tar(&[
        Entry::Link("out", "../../../../../../../../../../../../tmp"),
        Entry::File("out/berth-pwned-by-test", b"x"),
    ]);
    refused(
        &env,
        &oci_layout(&env.base.join("sym"), &l, TAR),
        &["escapes", "symlink"],
    );
    assert!(!Path::new("/tmp/berth-pwned-by-test").exists());
    // A good layer under an unknown media type.
    let good = tar(&[Entry::Dir("bin/"), Entry::File("bin/x", b"x")]);
    refused(
        &env,
        &oci_layout(&env.base.join("mt"), &good, "application/x-unknown"),
        &["unknown media type"],
    );
    // A corrupted blob: same size, one byte changed.
    let dir = oci_layout(&env.base.join("corrupt"), &good, TAR);
    let blob = dir.join("blobs/sha256").join(sha(&good));
    let mut bytes = good.clone();
    bytes[600] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    refused(&env, &dir, &["digest mismatch"]);
    // A truncated blob.
    std::fs::write(&blob, &good[..700]).unwrap();
    refused(&env, &dir, &["size mismatch"]);
    // A truncated archive of a good layout.
    let dir = oci_layout(&env.base.join("ok"), &good, TAR);
    let archive = env.base.join("ok.tar");
    assert!(Command::new("tar")
        .args([
            "-C",
            dir.to_str().unwrap(),
            "-cf",
            archive.to_str().unwrap(),
            "."
        ])
        .status()
        .unwrap()
        .success());
    let whole = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &whole[..whole.len() / 2 + 100]).unwrap();
    refused(&env, &archive, &["import"]);
    // The good one imports (so the refusals above were about what they say).
    import(&env, &dir, "berth-test/good");
    assert_eq!(image_names(&env), ["docker.io/berth-test/good:latest"]);
    env.finish();
}

#[test]
fn docker_save_archive_runs() {
    let env = Env::new("imd");
    let root = env.base.join("root");
    busybox_rootfs(&root);
    let layer_tar = env.base.join("layer.tar");
    assert!(Command::new("tar")
        .args([
            "-C",
            root.to_str().unwrap(),
            "-cf",
            layer_tar.to_str().unwrap(),
            "."
        ])
        .status()
        .unwrap()
        .success());
    let layer = std::fs::read(&layer_tar).unwrap();
    let diff = sha(&layer);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["sh", "-c"], "Cmd": ["echo docker-save"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff}")]},
    })
    .to_string();
    let chex = sha(config.as_bytes());
    let manifest = json!([{
        "Config": format!("{chex}.json"),
        "RepoTags": ["berth-test/saved:v1"],
        "Layers": [format!("{diff}/layer.tar")],
    }])
    .to_string();
    let archive = tar(&[
        Entry::File("manifest.json", manifest.as_bytes()),
        Entry::File(&format!("{chex}.json"), config.as_bytes()),
        Entry::Dir(&format!("{diff}/")),
        Entry::File(&format!("{diff}/layer.tar"), &layer),
    ]);
    let path = env.base.join("saved.tar");
    std::fs::write(&path, &archive).unwrap();
    let out = env.berth(&["image", "import", path.to_str().unwrap()]).ok();
    assert_eq!(out, "Loaded image: docker.io/berth-test/saved:v1\n");
    let c = env.name("c");
    // Entrypoint kept, Cmd replaced by the command given.
    assert_eq!(
        env.berth(&["run", "--rm", "--name", &c, "berth-test/saved:v1"])
            .ok(),
        "docker-save\n"
    );
    assert_eq!(
        env.berth(&[
            "run",
            "--rm",
            "--name",
            &c,
            "berth-test/saved:v1",
            "echo $PATH"
        ])
        .ok(),
        "/bin\n"
    );
    env.berth(&["image", "rm", "berth-test/saved:v1"]).ok();
    assert_eq!(stored(&env), Vec::<String>::new());
    env.finish();
}

#[test]
fn missing_layer_is_a_clear_error_with_nothing_left() {
    let env = Env::new("imx");
    let layout = busybox_layout(&env);
    import(&env, &layout, "berth-test/bb");
    let layers = env.data.join("images/layers");
    for e in std::fs::read_dir(&layers).unwrap().flatten() {
        std::fs::rename(e.path(), env.base.join("moved")).unwrap();
    }
    let c = env.name("c");
    let out = env.berth(&["run", "--rm", "--name", &c, "berth-test/bb"]);
    out.code(125);
    out.one_line_error(&["mount layers", "layer"]);
    env.finish();
}

#[test]
fn gzip_and_zstd_layers_keep_links_devices_owners_modes_and_xattrs() {
    let env = Env::new("imk");
    // Bottom: busybox, plain tar.
    let root = env.base.join("root");
    busybox_rootfs(&root);
    let base_tar = env.base.join("base.tar");
    assert!(Command::new("tar")
        .args([
            "-C",
            root.to_str().unwrap(),
            "-cf",
            base_tar.to_str().unwrap(),
            "."
        ])
        .status()
        .unwrap()
        .success());
    let base = std::fs::read(&base_tar).unwrap();
    // Middle, gzip: owners, modes, a hard link, a symlink, devices, a fifo, an xattr.
    let mid = tar(&[
        Entry::Dir("srv/"),
        Entry::Full(Full {
            name: "srv/suid",
            kind: b'0',
            mode: 0o4755,
            uid: 1000,
            gid: 1001,
            data: b"owned\n",
            xattrs: &[("user.berth", b"kept")],
            ..Full::default()
        }),
        Entry::Full(Full {
            name: "srv/hard",
            kind: b'1',
            link: "srv/suid",
            ..Full::default()
        }),
        Entry::Link("srv/sym", "/srv/suid"),
        Entry::Full(Full {
            name: "srv/null",
            kind: b'3',
            mode: 0o666,
            dev: (1, 3),
            ..Full::default()
        }),
        Entry::Full(Full {
            name: "srv/fifo",
            kind: b'6',
            mode: 0o600,
            ..Full::default()
        }),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &mid).unwrap();
    let mid_gz = gz.finish().unwrap();
    // Top, zstd: a file, and a link through /lib -> usr/lib inside the layer.
    let top = tar(&[
        Entry::Dir("usr/"),
        Entry::Dir("usr/lib/"),
        Entry::Link("lib", "usr/lib"),
        Entry::File("lib/via-link", b"zstd\n"),
    ]);
    let top_zst = zstd::encode_all(&top[..], 3).unwrap();
    let dir = oci_layout_n(
        &env.base.join("oci"),
        &[
            (base.clone(), sha(&base), TAR),
            (
                mid_gz,
                sha(&mid),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ),
            (
                top_zst,
                sha(&top),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        ],
    );
    import(&env, &dir, "berth-test/kinds");
    let c = env.name("c");
    let out = env.berth(&[
        "run",
        "--rm",
        "--name",
        &c,
        "berth-test/kinds",
        "sh",
        "-c",
        "stat -c '%n %u:%g %a %F %h' /srv/suid /srv/hard; stat -c '%n %F %t:%T' /srv/null; \\
         stat -c '%n %F' /srv/fifo; readlink /srv/sym; cat /srv/sym /usr/lib/via-link",
    ]);
    assert_eq!(
        out.ok(),
        "/srv/suid 1000:1001 4755 regular file 2\n/srv/hard 1000:1001 4755 regular file 2\n\
         /srv/null character special file 1:3\n/srv/fifo fifo\n/srv/suid\nowned\nzstd\n"
    );
    // The xattr is on the layer's file (read from the host: busybox has no getfattr).
    let v: Value =
        serde_json::from_str(&env.berth(&["image", "inspect", "berth-test/kinds"]).ok()).unwrap();
    let mid_dir = PathBuf::from(v[0]["LayerPaths"][1].as_str().unwrap());
    assert_eq!(
        xattr::get(mid_dir.join("srv/suid"), "user.berth").unwrap(),
        Some(b"kept".to_vec())
    );
    env.berth(&["image", "rm", "berth-test/kinds"]).ok();
    env.finish();
}

/// `--name REPO:TAG` names the tag too (an OCI layout's own tag is `latest` here);
/// a bare `--name REPO` takes the layout's tag.
#[test]
fn import_name_with_a_tag_keeps_it() {
    let env = Env::new("imt");
    let layout = busybox_layout(&env);
    let out = import(&env, &layout, "berth-test/tagged:v1");
    assert_eq!(out, "Loaded image: docker.io/berth-test/tagged:v1\n");
    let c = env.name("a");
    env.berth(&[
        "run",
        "--rm",
        "--name",
        &c,
        "berth-test/tagged:v1",
        "--",
        "true",
    ])
    .code(0);
    // The same image again: it now has both names.
    let out = import(&env, &layout, "berth-test/bare");
    assert!(
        out.lines()
            .any(|l| l == "Loaded image: docker.io/berth-test/bare:latest"),
        "{out}"
    );
    env.berth(&["image", "rm", "berth-test/tagged:v1", "berth-test/bare"])
        .ok();
    env.finish();
}
