//! XVA, the VM export xapi writes (`xe vm-export`) and reads (`xe
//! vm-import`): a tar stream, plain or gzip- or zstd-compressed, whose first
//! member is `ova.xml` (an XML-RPC struct: the export's version and its
//! objects, each a class, an id and the object's record), then every disk's
//! data in chunks, each chunk followed by its checksum.
//!
//! Read here as xapi's import reads it (xapi-project/xen-api), so that an
//! appliance xapi would refuse, or could not start, is refused before the node
//! changes, with the reason in one line:
//! - `ocaml/xapi/import.ml`: `with_open_archive` (the first member must be
//!   named `ova.xml`; a stream whose first block is not that is tried through
//!   gzip and zstd), `non_cdrom_vdis` (the disks streamed: the VDI of every
//!   VBD that is not a CD, outside an SR whose `content_type` is `iso`, and
//!   suspend images), the VBD handler (a `currently_attached` VBD whose VDI is
//!   not in the export is `Attached_disks_not_found`, unless it is a CD of a
//!   guest with qemu), `get_vm_record` (an unspecified `domain_type` is
//!   derived: an empty `HVM_boot_policy` is PV, any other HVM;
//!   `Xapi_vm_helpers.derive_domain_type`);
//! - `ocaml/xapi/stream_vdi.ml`, `recv_all_vdi`: the disks in the order of
//!   their ids; a disk's chunks named `ID/NNNNNNNN`, the numbers increasing, a
//!   number skipped standing for a chunk of zeros as long as the export's
//!   first chunk; each chunk followed by `ID/NNNNNNNN.checksum` (SHA-1, hex)
//!   or `ID/NNNNNNNN.xxhash` (XXH64, 16 upper-case hex digits), checked; a
//!   disk ends when its `virtual_size` is reached;
//! - `ocaml/xapi/importexport.ml`: the `version` struct (`export_vsn`: 0 has
//!   no inline checksums, below 2 a checksum table follows the disks).
//!
//! Decisions of xitc's own, stricter than xapi: `ova.xml` is read up to
//! [`OVA_XML_LIMIT`] (xapi reads what the header says); exports older than
//! [`EXPORT_VSN`] (XenServer 5.5's) are refused rather than checked another
//! way; a chunk that would write past its disk's `virtual_size` is refused
//! (xapi fails writing it). Not checked, because they depend on the host:
//! the export's xapi version against the host's (`assert_compatible`), the
//! SR and the networks the import lands on.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};

use anyhow::{Context as _, anyhow, bail};
use sha1::{Digest as _, Sha1};
use xxhash_rust::xxh64::Xxh64;

use crate::hex;

mod required;

pub use required::REQUIRED;

/// The fields of the export's `version` struct xapi's import reads
/// (`importexport.ml`, `version_of_rpc`; `export_vsn` may be absent).
const VERSION_FIELDS: [&str; 7] = [
    "hostname",
    "date",
    "product_version",
    "product_brand",
    "build_number",
    "xapi_major",
    "xapi_minor",
];

/// The name of an export's first member.
pub const OVA_XML: &str = "ova.xml";

/// The most of `ova.xml` read: a VM with its disks, snapshots and networks
/// takes tens of KiB.
pub const OVA_XML_LIMIT: u64 = 16 << 20;

/// The chunk size xapi exports with (`stream_vdi.ml`, `chunk_size`).
pub const CHUNK_SIZE: u64 = 1 << 20;

/// The export version xapi writes today (`Xapi_globs.export_vsn`), and the
/// oldest read here.
pub const EXPORT_VSN: i64 = 2;

/// The most of a checksum member read: 40 hex digits of SHA-1.
const CHECKSUM_LIMIT: u64 = 64;

/// How a VM boots: xapi's `domain_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainType {
    Hvm,
    Pv,
    Pvh,
    PvInPvh,
}

impl DomainType {
    /// xapi's name of it.
    pub fn name(self) -> &'static str {
        match self {
            DomainType::Hvm => "hvm",
            DomainType::Pv => "pv",
            DomainType::Pvh => "pvh",
            DomainType::PvInPvh => "pv_in_pvh",
        }
    }

    /// Whether xapi starts it only on a host whose capabilities include
    /// `hvm` (`Xapi_vm_helpers.assert_can_boot_here`: hvm, pvh and pv_in_pvh
    /// need it, else `VM_HVM_REQUIRED`).
    pub fn needs_hardware_virtualization(self) -> bool {
        self != DomainType::Pv
    }
}

/// The VM an export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    pub name_label: String,
    pub domain_type: DomainType,
    /// Whether `domain_type` was derived from `HVM_boot_policy` (an export
    /// from before xapi had the field, or one that left it unspecified).
    pub derived: bool,
}

/// A disk whose data the export streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Its id in the export (`Ref:…`), the prefix of its chunks' names.
    pub id: String,
    pub virtual_size: u64,
}

/// What an export's `ova.xml` says, as far as an appliance's import and start
/// depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub export_vsn: i64,
    pub vm: Vm,
    /// In the order their data comes.
    pub disks: Vec<Disk>,
}

/// Reads a whole export as xapi's import does: `ova.xml`, then every disk's
/// chunks and checksums. What xapi would refuse is an error saying why.
pub fn read_export(reader: impl Read) -> anyhow::Result<Export> {
    let mut reader = BufReader::new(reader);
    let magic = reader.fill_buf().context("reading the XVA")?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        read_tar(flate2::read::MultiGzDecoder::new(reader)).context("(gzip-compressed)")
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(reader)
            .map_err(|error| anyhow!("not a zstd stream: {error}"))?;
        read_tar(decoder).context("(zstd-compressed)")
    } else {
        read_tar(reader)
    }
}

fn read_tar(reader: impl Read) -> anyhow::Result<Export> {
    let mut archive = tar::Archive::new(reader);
    let mut members = archive.entries().context("reading the XVA as tar")?;
    let mut first = members
        .next()
        .ok_or_else(|| anyhow!("the XVA is empty: no {OVA_XML}"))?
        .context("reading the XVA's first member")?;
    let name = member_name(&first);
    if name != OVA_XML {
        bail!("the XVA's first member is {name:?}, not {OVA_XML} (xapi's import refuses it)");
    }
    let size = first.size();
    if size > OVA_XML_LIMIT {
        bail!(
            "the XVA's {OVA_XML} is {size} bytes, more than the {} MiB read",
            OVA_XML_LIMIT >> 20
        );
    }
    let mut xml = String::new();
    (&mut first)
        .take(OVA_XML_LIMIT)
        .read_to_string(&mut xml)
        .with_context(|| format!("reading the XVA's {OVA_XML}"))?;
    drop(first);
    let export = parse_ova_xml(&xml)?;
    let mut stream = ChunkStream {
        members: &mut members,
        first_chunk_length: None,
    };
    for disk in &export.disks {
        stream.read_disk(disk)?;
    }
    Ok(export)
}

fn member_name<R: Read>(member: &tar::Entry<'_, R>) -> String {
    String::from_utf8_lossy(&member.path_bytes()).into_owned()
}

/// The members after `ova.xml`, read chunk by chunk.
struct ChunkStream<'a, 'b, R: Read> {
    members: &'a mut tar::Entries<'b, R>,
    /// The length of the export's first chunk: what a skipped number stands
    /// for (xapi's `firstchunklength`, one for all the disks).
    first_chunk_length: Option<u64>,
}

impl<'b, R: Read> ChunkStream<'_, 'b, R> {
    fn next_member(&mut self, disk: &Disk, offset: u64) -> anyhow::Result<tar::Entry<'b, R>> {
        self.members
            .next()
            .ok_or_else(|| {
                anyhow!(
                    "the XVA ends before disk {} does ({offset} of its {} bytes): a chunk is missing",
                    disk.id,
                    disk.virtual_size
                )
            })?
            .with_context(|| format!("reading the XVA at disk {} (byte {offset})", disk.id))
    }

    fn read_disk(&mut self, disk: &Disk) -> anyhow::Result<()> {
        let prefix = format!("{}/", disk.id);
        let (mut offset, mut last) = (0u64, None::<u64>);
        while offset < disk.virtual_size {
            let mut chunk = self.next_member(disk, offset)?;
            let name = member_name(&chunk);
            let number = name
                .strip_prefix(&prefix)
                .filter(|suffix| suffix.len() >= 8 && suffix.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|suffix| suffix.parse::<u64>().ok())
                .ok_or_else(|| {
                    anyhow!(
                        "expected a chunk of disk {} in the XVA, found {name:?}",
                        disk.id
                    )
                })?;
            if last.is_some_and(|last| number <= last) {
                bail!(
                    "the XVA's chunks of disk {} are out of order at {name:?}",
                    disk.id
                );
            }
            let length = chunk.size();
            let sums =
                Checksums::of(&mut chunk).with_context(|| format!("reading the XVA's {name}"))?;
            drop(chunk);
            let first = *self.first_chunk_length.get_or_insert(length);
            let skipped = number - last.map_or(0, |last| last + 1);
            offset = skipped
                .checked_mul(first)
                .and_then(|zeros| zeros.checked_add(length))
                .and_then(|bytes| bytes.checked_add(offset))
                .filter(|&end| end <= disk.virtual_size)
                .ok_or_else(|| {
                    anyhow!(
                        "the XVA's {name} goes past the end of its disk ({} bytes)",
                        disk.virtual_size
                    )
                })?;
            last = Some(number);
            self.check_sum(disk, &name, &sums, offset)?;
        }
        Ok(())
    }

    fn check_sum(
        &mut self,
        disk: &Disk,
        chunk: &str,
        sums: &Checksums,
        offset: u64,
    ) -> anyhow::Result<()> {
        let mut member = self.next_member(disk, offset)?;
        let name = member_name(&member);
        let expected = match name.strip_prefix(chunk) {
            Some(".checksum") => &sums.sha1,
            Some(".xxhash") => &sums.xxh64,
            _ => bail!("expected the checksum of the XVA's {chunk}, found {name:?}"),
        };
        let mut written = String::new();
        (&mut member)
            .take(CHECKSUM_LIMIT)
            .read_to_string(&mut written)
            .with_context(|| format!("reading the XVA's {name}"))?;
        if written != *expected {
            bail!(
                "the XVA's {chunk} does not match its checksum ({name} says {written:?}, the data {expected:?})"
            );
        }
        Ok(())
    }
}

/// A chunk's checksums, as xapi writes them.
struct Checksums {
    /// `.checksum`: SHA-1, lower-case hex.
    sha1: String,
    /// `.xxhash`: XXH64 (seed 0), `%016LX`.
    xxh64: String,
}

impl Checksums {
    fn of(data: &mut impl Read) -> io::Result<Self> {
        let mut both = Hashers(Sha1::new(), Xxh64::new(0));
        io::copy(data, &mut both)?;
        Ok(Checksums {
            sha1: hex::lower(&both.0.finalize()),
            xxh64: format!("{:016X}", both.1.digest()),
        })
    }
}

/// SHA-1 and XXH64 fed the same bytes.
struct Hashers(Sha1, Xxh64);

impl Write for Hashers {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        self.1.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An XML-RPC value, as xapi's `Xmlrpc` writes it (a bare `<value>text</value>`
/// is a string).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Struct(HashMap<String, Value>),
    Array(Vec<Value>),
    /// A double, a date, nil: nothing read here uses them.
    Other,
}

impl Value {
    fn parse(node: roxmltree::Node<'_, '_>) -> anyhow::Result<Value> {
        let Some(inner) = node.children().find(roxmltree::Node::is_element) else {
            return Ok(Value::Str(node.text().unwrap_or_default().to_owned()));
        };
        let text = || inner.text().unwrap_or_default().trim();
        Ok(match inner.tag_name().name() {
            "string" => Value::Str(inner.text().unwrap_or_default().to_owned()),
            "int" | "i4" | "i8" => Value::Int(
                text()
                    .parse()
                    .map_err(|_| anyhow!("{OVA_XML}: not an integer: {:?}", text()))?,
            ),
            "boolean" => Value::Bool(text() == "1"),
            "struct" => {
                let mut members = HashMap::new();
                for member in inner.children().filter(|n| n.has_tag_name("member")) {
                    let name = member
                        .children()
                        .find(|n| n.has_tag_name("name"))
                        .and_then(|n| n.text())
                        .unwrap_or_default();
                    let value = member
                        .children()
                        .find(|n| n.has_tag_name("value"))
                        .ok_or_else(|| anyhow!("{OVA_XML}: member {name:?} has no value"))?;
                    members.insert(name.to_owned(), Value::parse(value)?);
                }
                Value::Struct(members)
            }
            "array" => Value::Array(
                inner
                    .children()
                    .filter(|n| n.has_tag_name("data"))
                    .flat_map(|data| data.children().filter(|n| n.has_tag_name("value")))
                    .map(Value::parse)
                    .collect::<anyhow::Result<_>>()?,
            ),
            _ => Value::Other,
        })
    }

    fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(members) => members.get(name),
            _ => None,
        }
    }

    fn str(&self, name: &str) -> &str {
        match self.field(name) {
            Some(Value::Str(text)) => text,
            _ => "",
        }
    }

    fn bool(&self, name: &str) -> bool {
        matches!(self.field(name), Some(Value::Bool(true)))
    }

    /// A 64-bit field, which xapi writes as a string of digits.
    fn u64(&self, name: &str) -> Option<u64> {
        match self.field(name)? {
            Value::Str(text) => text.parse().ok(),
            Value::Int(number) => u64::try_from(*number).ok(),
            _ => None,
        }
    }
}

/// An object of the export: its id, its class and its record.
struct Object {
    id: String,
    class: String,
    record: Value,
}

/// The object of `objects` whose id is `id`.
fn find<'a>(objects: &'a [Object], id: &str) -> Option<&'a Object> {
    objects.iter().find(|object| object.id == id)
}

/// What `ova.xml` says (module doc): the one VM, its boot mode, the disks
/// streamed. An export xapi's import would refuse, or that is not one VM
/// xitc can import and start, is an error saying why.
pub fn parse_ova_xml(xml: &str) -> anyhow::Result<Export> {
    let document = roxmltree::Document::parse(xml)
        .map_err(|error| anyhow!("{OVA_XML} is not XML: {error}"))?;
    let root = document.root_element();
    if !root.has_tag_name("value") {
        bail!(
            "{OVA_XML} is not an XML-RPC value (its root is <{}>)",
            root.tag_name().name()
        );
    }
    let header = Value::parse(root)?;
    if let Some(missing) = VERSION_FIELDS.iter().find(|name| {
        header
            .field("version")
            .and_then(|v| v.field(name))
            .is_none()
    }) {
        bail!("{OVA_XML}'s version lacks {missing}, which xapi's import requires");
    }
    let export_vsn = match header.field("version").and_then(|v| v.field("export_vsn")) {
        Some(Value::Int(vsn)) => *vsn,
        Some(Value::Str(vsn)) => vsn.parse().unwrap_or(0),
        _ => 0,
    };
    if export_vsn < EXPORT_VSN {
        bail!(
            "the XVA is of export version {export_vsn}, older than XenServer 5.5's ({EXPORT_VSN}), which xitc does not check"
        );
    }
    let Some(Value::Array(items)) = header.field("objects") else {
        bail!("{OVA_XML} has no objects");
    };
    let mut objects = Vec::new();
    for item in items {
        let (class, id) = (item.str("class"), item.str("id"));
        let record = item
            .field("snapshot")
            .cloned()
            .ok_or_else(|| anyhow!("{OVA_XML}: object {id:?} has no record"))?;
        check_required(class, id, &record)?;
        objects.push(Object {
            id: id.to_owned(),
            class: class.to_owned(),
            record,
        });
    }
    let vm = vm_of(&the_vm(&objects)?.record);
    let disks = streamed_disks(&objects, vm.domain_type)?;
    Ok(Export {
        export_vsn,
        vm,
        disks,
    })
}

/// A record of `class` lacking a field xapi's generated `*_t_of_rpc` has no
/// default for ([`REQUIRED`]) fails xapi's import: refused here.
fn check_required(class: &str, id: &str, record: &Value) -> anyhow::Result<()> {
    let Some((_, fields)) = REQUIRED.iter().find(|(name, _)| *name == class) else {
        return Ok(());
    };
    if let Some((field, _)) = fields
        .iter()
        .find(|(field, _)| record.field(field).is_none())
    {
        bail!(
            "the XVA's {class} {id} has no {field}, which xapi's import requires (\"Field {field} not present in rpc\")"
        );
    }
    Ok(())
}

/// The export's one VM that is not a snapshot (its snapshots come with it).
fn the_vm(objects: &[Object]) -> anyhow::Result<&Object> {
    let vms: Vec<&Object> = objects
        .iter()
        .filter(|object| object.class == "VM" && !object.record.bool("is_a_snapshot"))
        .collect();
    let [vm] = vms.as_slice() else {
        bail!("the XVA holds {} VMs; an appliance is one", vms.len());
    };
    if vm.record.bool("is_a_template") {
        bail!(
            "the XVA holds a template ({:?}), not a VM: it would import as a template, which does not start",
            vm.record.str("name_label")
        );
    }
    Ok(vm)
}

fn vm_of(record: &Value) -> Vm {
    let stated = match record.str("domain_type") {
        "hvm" => Some(DomainType::Hvm),
        "pv" => Some(DomainType::Pv),
        "pvh" => Some(DomainType::Pvh),
        "pv_in_pvh" => Some(DomainType::PvInPvh),
        _ => None,
    };
    let derived = if record.str("HVM_boot_policy").is_empty() {
        DomainType::Pv
    } else {
        DomainType::Hvm
    };
    Vm {
        name_label: record.str("name_label").to_owned(),
        domain_type: stated.unwrap_or(derived),
        derived: stated.is_none(),
    }
}

/// The disks whose data follows `ova.xml`, in their order (module doc).
fn streamed_disks(objects: &[Object], vm_boots: DomainType) -> anyhow::Result<Vec<Disk>> {
    let has_qemu = vm_boots == DomainType::Hvm;
    let mut streamed = Vec::new();
    for object in objects.iter().filter(|object| object.class == "VBD") {
        let id = &object.id;
        let vdi = object.record.str("VDI");
        let is_cd = object.record.str("type") == "CD";
        let Some(disk) = find(objects, vdi).filter(|o| o.class == "VDI") else {
            if object.record.bool("currently_attached") && !(is_cd && has_qemu) {
                bail!(
                    "the XVA's VBD {id} is attached to a disk the XVA does not hold (xapi: Attached_disks_not_found)"
                );
            }
            continue;
        };
        let in_iso_sr = find(objects, disk.record.str("SR"))
            .is_some_and(|sr| sr.record.str("content_type") == "iso");
        if !is_cd && !in_iso_sr {
            streamed.push(vdi.to_owned());
        }
    }
    streamed.extend(
        objects
            .iter()
            .filter(|object| object.class == "VDI" && object.record.str("type") == "suspend")
            .map(|object| object.id.clone()),
    );
    streamed.sort();
    streamed.dedup();
    streamed
        .into_iter()
        .map(|id| {
            let size = find(objects, &id)
                .and_then(|disk| disk.record.u64("virtual_size"))
                .ok_or_else(|| anyhow!("{OVA_XML}: disk {id} has no virtual_size"))?;
            Ok(Disk {
                id,
                virtual_size: size,
            })
        })
        .collect()
}

/// Writes `data` as the chunks of disk `id` and their `.checksum` members,
/// as xapi's export does (chunks of [`CHUNK_SIZE`]; the first and the last
/// always, a chunk of zeros between them left out). Returns the bytes read.
fn write_disk<W: Write>(
    archive: &mut tar::Builder<W>,
    id: &str,
    mut data: impl Read,
) -> io::Result<u64> {
    let (mut number, mut total) = (0u64, 0u64);
    let mut held: Option<(u64, Vec<u8>)> = None;
    loop {
        let mut chunk = Vec::new();
        let read = (&mut data).take(CHUNK_SIZE).read_to_end(&mut chunk)?;
        if read == 0 {
            break;
        }
        // The previous chunk is written unless it is zeros and not the first:
        // whether it is the last is known only now.
        if let Some((held_number, held_chunk)) = held.take()
            && (held_number == 0 || held_chunk.iter().any(|&byte| byte != 0))
        {
            append_chunk(archive, id, held_number, &held_chunk)?;
        }
        held = Some((number, chunk));
        number += 1;
        total += read as u64;
    }
    if let Some((held_number, chunk)) = held {
        append_chunk(archive, id, held_number, &chunk)?;
    }
    Ok(total)
}

fn append_chunk<W: Write>(
    archive: &mut tar::Builder<W>,
    id: &str,
    number: u64,
    chunk: &[u8],
) -> io::Result<()> {
    let name = format!("{id}/{number:08}");
    append_member(archive, &name, chunk)?;
    let sums = Checksums::of(&mut &chunk[..])?;
    append_member(archive, &format!("{name}.checksum"), sums.sha1.as_bytes())
}

/// Appends one member, as xapi's `Tar.Header.make` makes them.
fn append_member<W: Write>(
    archive: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    archive.append_data(&mut header, name, data)
}

/// The VM of an export [`ova_xml`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVm {
    pub name_label: String,
    pub domain_type: DomainType,
    /// Its memory, static and dynamic, in bytes.
    pub memory_bytes: u64,
    pub vcpus: u32,
    /// The size of its one disk, in bytes.
    pub disk_size: u64,
}

/// The id of the disk [`ova_xml`] writes: the prefix of its chunks.
pub const DISK_ID: &str = "Ref:2";

/// An `ova.xml` for `vm` and its one disk ([`DISK_ID`]), in xapi's format:
/// the export's version, then the VM, its VBD, its VDI and the VDI's SR.
/// Each record holds every field xapi's import requires ([`REQUIRED`]): the
/// ones that matter set here, the others at the empty value of their type
/// (`""`, `0`, `false`, an empty map or set, `OpaqueRef:NULL`). uuids are
/// placeholders: xapi's import gives every object a new one.
pub fn ova_xml(vm: &NewVm) -> String {
    use Field::{Array, Bool, Struct};
    let object = |class: &'static str, id: &'static str, uuid: &str, set| {
        Struct(vec![
            ("class", text(class)),
            ("id", text(id)),
            ("snapshot", whole_record(class, uuid, set)),
        ])
    };
    let objects = Array(vec![
        object(
            "VM",
            "Ref:0",
            "00000000-0000-4000-8000-000000000000",
            vm_record(vm),
        ),
        object(
            "VBD",
            "Ref:1",
            "00000000-0000-4000-8000-000000000001",
            vec![
                ("VM", text("Ref:0")),
                ("VDI", text(DISK_ID)),
                ("device", text("xvda")),
                ("userdevice", text("0")),
                ("bootable", Bool(true)),
                ("mode", text("RW")),
                ("type", text("Disk")),
                ("currently_attached", Bool(false)),
            ],
        ),
        object(
            "VDI",
            DISK_ID,
            "00000000-0000-4000-8000-000000000002",
            vec![
                ("name_label", text(&format!("{} disk", vm.name_label))),
                ("SR", text("Ref:3")),
                ("virtual_size", number(vm.disk_size)),
                ("physical_utilisation", number(vm.disk_size)),
                ("type", text("system")),
                ("managed", Bool(true)),
                ("VBDs", refs(&["Ref:1"])),
            ],
        ),
        object(
            "SR",
            "Ref:3",
            "00000000-0000-4000-8000-000000000003",
            vec![("type", text("lvm")), ("content_type", text("user"))],
        ),
    ]);
    let version = Struct(vec![
        ("hostname", text("xitc")),
        ("date", text("")),
        ("product_version", text("")),
        ("product_brand", text("xitc")),
        ("build_number", text("")),
        ("xapi_major", Field::Int(1)),
        ("xapi_minor", Field::Int(1)),
        ("export_vsn", Field::Int(EXPORT_VSN)),
    ]);
    let mut xml = String::new();
    Struct(vec![("version", version), ("objects", objects)]).write(&mut xml);
    xml
}

/// The VM's record: what [`ova_xml`] sets.
fn vm_record(vm: &NewVm) -> Vec<(&'static str, Field)> {
    let hvm = vm.domain_type != DomainType::Pv;
    let memory = || number(vm.memory_bytes);
    vec![
        ("name_label", text(&vm.name_label)),
        ("name_description", text("built for xitc's appliance mode")),
        ("user_version", number(1)),
        ("is_a_template", Field::Bool(false)),
        ("is_a_snapshot", Field::Bool(false)),
        ("is_control_domain", Field::Bool(false)),
        ("power_state", text("Halted")),
        ("memory_static_max", memory()),
        ("memory_dynamic_max", memory()),
        ("memory_dynamic_min", memory()),
        ("memory_static_min", memory()),
        ("VCPUs_max", number(vm.vcpus.into())),
        ("VCPUs_at_startup", number(vm.vcpus.into())),
        ("actions_after_shutdown", text("destroy")),
        ("actions_after_reboot", text("restart")),
        ("actions_after_crash", text("restart")),
        ("domain_type", text(vm.domain_type.name())),
        ("HVM_boot_policy", text(if hvm { "BIOS order" } else { "" })),
        (
            "HVM_boot_params",
            if hvm {
                map(&[("order", "c")])
            } else {
                map(&[])
            },
        ),
        ("PV_bootloader", text(if hvm { "" } else { "pygrub" })),
        (
            "platform",
            map(&[
                ("acpi", "1"),
                ("apic", "true"),
                ("pae", "true"),
                ("nx", "true"),
                ("viridian", "false"),
            ]),
        ),
        ("domid", text("-1")),
        ("VBDs", refs(&["Ref:1"])),
        ("VIFs", refs(&[])),
    ]
}

fn text(value: &str) -> Field {
    Field::Str(value.to_owned())
}

/// A 64-bit integer as xapi writes one: a string of digits.
fn number(value: u64) -> Field {
    Field::Str(value.to_string())
}

fn refs(ids: &[&str]) -> Field {
    Field::Array(ids.iter().map(|id| text(id)).collect())
}

fn map(pairs: &[(&'static str, &str)]) -> Field {
    Field::Struct(
        pairs
            .iter()
            .map(|(key, value)| (*key, text(value)))
            .collect(),
    )
}

/// A record of `class`: `set`, then every field of [`REQUIRED`] it lacks
/// at the empty value of its type.
fn whole_record(class: &str, uuid: &str, mut set: Vec<(&'static str, Field)>) -> Field {
    set.insert(0, ("uuid", Field::Str(uuid.to_owned())));
    let required = REQUIRED
        .iter()
        .find(|(name, _)| *name == class)
        .map_or(&[][..], |(_, fields)| fields);
    for (field, kind) in required {
        if set.iter().any(|(name, _)| name == field) {
            continue;
        }
        let empty = match *kind {
            "int" => Field::Str("0".to_owned()),
            "bool" => Field::Bool(false),
            "string set" => Field::Array(Vec::new()),
            kind if kind.ends_with(" map") => Field::Struct(Vec::new()),
            kind if kind.ends_with(" ref") => Field::Str("OpaqueRef:NULL".to_owned()),
            // A string; an enum is always set above (the test of the
            // writer reads every record back).
            _ => Field::Str(String::new()),
        };
        set.push((field, empty));
    }
    Field::Struct(set)
}

/// An XML-RPC value to write, members in their order.
enum Field {
    Str(String),
    Int(i64),
    Bool(bool),
    Struct(Vec<(&'static str, Field)>),
    Array(Vec<Field>),
}

impl Field {
    /// As xapi's `Xmlrpc.to_string`: a string as the bare text of `<value>`.
    fn write(&self, xml: &mut String) {
        match self {
            Field::Str(text) if text.is_empty() => xml.push_str("<value/>"),
            Field::Str(text) => {
                let _ = write!(xml, "<value>{}</value>", escape(text));
            }
            Field::Int(number) => {
                let _ = write!(xml, "<value><i4>{number}</i4></value>");
            }
            Field::Bool(value) => {
                let _ = write!(
                    xml,
                    "<value><boolean>{}</boolean></value>",
                    u8::from(*value)
                );
            }
            Field::Struct(members) => {
                xml.push_str("<value><struct>");
                for (name, value) in members {
                    let _ = write!(xml, "<member><name>{name}</name>");
                    value.write(xml);
                    xml.push_str("</member>");
                }
                xml.push_str("</struct></value>");
            }
            Field::Array(items) => {
                xml.push_str("<value><array><data>");
                for item in items {
                    item.write(xml);
                }
                xml.push_str("</data></array></value>");
            }
        }
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes a whole export of `vm` with `disk` (exactly `vm.disk_size` bytes)
/// as its disk: `ova.xml`, the chunks, the end of the tar.
pub fn write_export(out: impl Write, vm: &NewVm, disk: impl Read) -> anyhow::Result<()> {
    let mut archive = tar::Builder::new(out);
    append_member(&mut archive, OVA_XML, ova_xml(vm).as_bytes()).context("writing ova.xml")?;
    let written = write_disk(&mut archive, DISK_ID, disk).context("writing the disk")?;
    if written != vm.disk_size {
        bail!(
            "the disk has {written} bytes, not the {} its VM says",
            vm.disk_size
        );
    }
    archive.into_inner().context("ending the XVA")?.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HVM: &str = include_str!("../../tests/fixtures/xva/hvm.ova.xml");
    const PV: &str = include_str!("../../tests/fixtures/xva/pv-pygrub.ova.xml");
    const MIB: u64 = CHUNK_SIZE;

    fn vm(domain_type: DomainType, disk_size: u64) -> NewVm {
        NewVm {
            name_label: "appliance".to_owned(),
            domain_type,
            memory_bytes: 512 << 20,
            vcpus: 1,
            disk_size,
        }
    }

    /// A disk of `chunks` MiB whose chunk `n` is filled with `n` (chunk 0
    /// with 0: zeros, which the export still writes, being the first).
    fn disk(chunks: u8) -> Vec<u8> {
        (0..chunks)
            .flat_map(|n| std::iter::repeat_n(n, usize::try_from(MIB).unwrap()))
            .collect()
    }

    fn export_of(vm: &NewVm, data: &[u8]) -> Vec<u8> {
        let mut xva = Vec::new();
        write_export(&mut xva, vm, data).unwrap();
        xva
    }

    /// The names of an archive's members.
    fn names(xva: &[u8]) -> Vec<String> {
        tar::Archive::new(xva)
            .entries()
            .unwrap()
            .map(|member| member_name(&member.unwrap()))
            .collect()
    }

    /// A tar of `members`, as given.
    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut archive = tar::Builder::new(Vec::new());
        for (name, data) in members {
            append_member(&mut archive, name, data).unwrap();
        }
        archive.into_inner().unwrap()
    }

    fn error(xva: &[u8]) -> String {
        format!("{:#}", read_export(xva).unwrap_err())
    }

    #[test]
    fn the_fixtures_read_as_xapi_reads_them() {
        let hvm = parse_ova_xml(HVM).unwrap();
        assert_eq!(
            hvm.vm,
            Vm {
                name_label: "appliance & co".to_owned(),
                domain_type: DomainType::Hvm,
                derived: false,
            }
        );
        // The CD's ISO is not streamed; the ids sort as strings.
        assert_eq!(
            hvm.disks,
            [
                Disk {
                    id: "Ref:12".to_owned(),
                    virtual_size: MIB
                },
                Disk {
                    id: "Ref:9".to_owned(),
                    virtual_size: 2 * MIB
                },
            ]
        );
        let pv = parse_ova_xml(PV).unwrap();
        assert_eq!(pv.vm.domain_type, DomainType::Pv);
        assert!(pv.vm.derived);
        assert!(!DomainType::Pv.needs_hardware_virtualization());
        for needs in [DomainType::Hvm, DomainType::Pvh, DomainType::PvInPvh] {
            assert!(needs.needs_hardware_virtualization());
        }
    }

    #[test]
    fn what_is_written_reads_back_with_zero_chunks_left_out() {
        // Chunks 0 (zeros, first), 1, 2 and a last of zeros, 512 KiB.
        let mut data = disk(3);
        data.extend(std::iter::repeat_n(0, 512 * 1024));
        let mut data_with_gap = data.clone();
        // Chunk 1 made zeros: left out, a skipped number.
        data_with_gap[usize::try_from(MIB).unwrap()..usize::try_from(2 * MIB).unwrap()].fill(0);
        let size = data.len() as u64;
        for (data, chunks) in [
            (
                &data,
                ["00000000", "00000001", "00000002", "00000003"].as_slice(),
            ),
            (
                &data_with_gap,
                ["00000000", "00000002", "00000003"].as_slice(),
            ),
        ] {
            let xva = export_of(&vm(DomainType::Hvm, size), data);
            let mut expected = vec![OVA_XML.to_owned()];
            for chunk in chunks {
                expected.push(format!("Ref:2/{chunk}"));
                expected.push(format!("Ref:2/{chunk}.checksum"));
            }
            assert_eq!(names(&xva), expected);
            let export = read_export(&xva[..]).unwrap();
            assert_eq!(export.vm.domain_type, DomainType::Hvm);
            assert_eq!(
                export.disks,
                [Disk {
                    id: DISK_ID.to_owned(),
                    virtual_size: size
                }]
            );
        }
        let pv = export_of(&vm(DomainType::Pv, MIB), &disk(1));
        assert_eq!(read_export(&pv[..]).unwrap().vm.domain_type, DomainType::Pv);
    }

    #[test]
    fn compressed_exports_are_read_as_xapi_retries_them() {
        let xva = export_of(&vm(DomainType::Hvm, 2 * MIB), &disk(2));
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&xva).unwrap();
        let gzip = gzip.finish().unwrap();
        assert_eq!(
            read_export(&gzip[..]).unwrap().vm.domain_type,
            DomainType::Hvm
        );
        let mut zstd = Vec::new();
        ruzstd::encoding::compress(
            &xva[..],
            &mut zstd,
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(
            read_export(&zstd[..]).unwrap().vm.domain_type,
            DomainType::Hvm
        );
    }

    #[test]
    fn checksums_are_xapis() {
        // XXH64's specification's vectors (seed 0), and one the xe stand-in's
        // own XXH64 gives too (bin-convert/tests/stand-ins/xe).
        let xxh64 = |data: &[u8]| Checksums::of(&mut &data[..]).unwrap().xxh64;
        assert_eq!(xxh64(b""), "EF46DB3751D8E999");
        assert_eq!(xxh64(b"a"), "D24EC4F1A98C6E5B");
        assert_eq!(xxh64(&(0..100).collect::<Vec<u8>>()), "6AC1E58032166597");
        assert_eq!(
            Checksums::of(&mut &b"abc"[..]).unwrap().sha1,
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn xxhash_checksums_are_checked_too() {
        let chunk = vec![7u8; 4096];
        let sums = Checksums::of(&mut &chunk[..]).unwrap();
        let xml = ova_xml(&vm(DomainType::Hvm, 4096));
        let good = tar_of(&[
            (OVA_XML, xml.as_bytes()),
            ("Ref:2/00000000", &chunk),
            ("Ref:2/00000000.xxhash", sums.xxh64.as_bytes()),
        ]);
        read_export(&good[..]).unwrap();
        let bad = tar_of(&[
            (OVA_XML, xml.as_bytes()),
            ("Ref:2/00000000", &chunk),
            ("Ref:2/00000000.xxhash", b"0123456789ABCDEF"),
        ]);
        assert!(
            error(&bad).contains("does not match its checksum"),
            "{}",
            error(&bad)
        );
    }

    #[test]
    fn damaged_exports_are_refused_saying_why() {
        let xva = export_of(&vm(DomainType::Hvm, 2 * MIB), &disk(2));
        let xml = ova_xml(&vm(DomainType::Hvm, 2 * MIB));
        let chunk = vec![1u8; usize::try_from(MIB).unwrap()];
        let sum = Checksums::of(&mut &chunk[..]).unwrap().sha1;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "no ova.xml"),
            (
                "truncated",
                xva[..xva.len() / 2].to_vec(),
                "reading the XVA",
            ),
            (
                "a missing chunk",
                tar_of(&[
                    (OVA_XML, xml.as_bytes()),
                    ("Ref:2/00000000", &chunk),
                    ("Ref:2/00000000.checksum", sum.as_bytes()),
                ]),
                "a chunk is missing",
            ),
            (
                "not ova.xml first",
                tar_of(&[("Ref:2/00000000", &chunk)]),
                "first member is \"Ref:2/00000000\", not ova.xml",
            ),
            (
                "a wrong checksum",
                tar_of(&[
                    (OVA_XML, xml.as_bytes()),
                    ("Ref:2/00000000", &chunk),
                    ("Ref:2/00000000.checksum", b"00"),
                ]),
                "does not match its checksum",
            ),
            (
                "no checksum",
                tar_of(&[
                    (OVA_XML, xml.as_bytes()),
                    ("Ref:2/00000000", &chunk),
                    ("Ref:2/00000001", &chunk),
                ]),
                "expected the checksum of the XVA's Ref:2/00000000, found \"Ref:2/00000001\"",
            ),
            (
                "another disk's chunk",
                tar_of(&[(OVA_XML, xml.as_bytes()), ("Ref:9/00000000", &chunk)]),
                "expected a chunk of disk Ref:2",
            ),
            (
                "chunks out of order",
                tar_of(&[
                    (OVA_XML, xml.as_bytes()),
                    ("Ref:2/00000000", &chunk),
                    ("Ref:2/00000000.checksum", sum.as_bytes()),
                    ("Ref:2/00000000", &chunk),
                ]),
                "out of order",
            ),
            (
                "past the disk's end",
                tar_of(&[
                    (OVA_XML, xml.as_bytes()),
                    ("Ref:2/00000000", &chunk),
                    ("Ref:2/00000000.checksum", sum.as_bytes()),
                    ("Ref:2/00000005", &chunk),
                ]),
                "goes past the end of its disk",
            ),
            (
                "not XML",
                tar_of(&[(OVA_XML, b"<value><struct>")]),
                "ova.xml is not XML",
            ),
        ];
        for (case, xva, expected) in cases {
            let message = format!("{:#}", read_export(&xva[..]).expect_err(case));
            assert!(message.contains(expected), "{case}: {message}");
            assert!(!message.contains('\n'), "{case}: {message}");
        }
    }

    #[test]
    fn an_ova_xml_larger_than_the_limit_is_not_read() {
        // A header that claims 17 MiB, and no data: refused from the header.
        let mut header = tar::Header::new_ustar();
        header.set_path(OVA_XML).unwrap();
        header.set_size(OVA_XML_LIMIT + MIB);
        header.set_cksum();
        let mut xva = header.as_bytes().to_vec();
        xva.extend([0u8; 1024]);
        assert!(
            error(&xva).contains("more than the 16 MiB read"),
            "{}",
            error(&xva)
        );
    }

    #[test]
    fn the_writer_writes_every_field_xapi_requires_and_no_empty_enum() {
        for domain_type in [DomainType::Hvm, DomainType::Pv] {
            let xml = ova_xml(&vm(domain_type, MIB));
            // The reader refuses a record without a required field.
            parse_ova_xml(&xml).unwrap();
            let document = roxmltree::Document::parse(&xml).unwrap();
            let header = Value::parse(document.root_element()).unwrap();
            let Some(Value::Array(objects)) = header.field("objects") else {
                panic!("no objects");
            };
            for object in objects {
                let class = object.str("class");
                let record = object.field("snapshot").unwrap();
                let (_, fields) = REQUIRED.iter().find(|(name, _)| *name == class).unwrap();
                for (field, kind) in *fields {
                    if kind.starts_with("enum ") {
                        assert!(!record.str(field).is_empty(), "{class}.{field}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_record_without_a_field_xapi_requires_is_refused() {
        let without = HVM.replacen(
            "<member><name>VCPUs_max</name>",
            "<member><name>VCPUs_maximum</name>",
            1,
        );
        assert_ne!(without, HVM);
        let message = format!("{:#}", parse_ova_xml(&without).unwrap_err());
        assert!(
            message.contains("the XVA's VM Ref:0 has no VCPUs_max, which xapi's import requires"),
            "{message}"
        );
        let without = HVM.replacen(
            "<member><name>xapi_minor</name>",
            "<member><name>xapi_micro</name>",
            1,
        );
        let message = format!("{:#}", parse_ova_xml(&without).unwrap_err());
        assert!(message.contains("version lacks xapi_minor"), "{message}");
    }

    #[test]
    fn exports_that_are_not_one_startable_vm_are_refused() {
        let hvm = HVM.to_owned();
        let cases = [
            (hvm.replace("<i4>2</i4></value></member></struct>", "<i4>0</i4></value></member></struct>"), "export version 0"),
            // The snapshot made a VM: two VMs.
            (hvm.replace("<value><boolean>1</boolean></value></member><member><name>is_a_snapshot</name><value><boolean>1</boolean>",
                         "<value><boolean>1</boolean></value></member><member><name>is_a_snapshot</name><value><boolean>0</boolean>"), "holds 2 VMs"),
            (hvm.replace("<name>is_a_template</name><value><boolean>0</boolean>", "<name>is_a_template</name><value><boolean>1</boolean>"), "holds a template"),
            // An attached disk whose VDI is not in the export.
            (hvm.replace("<value>Ref:9</value></member><member><name>type</name><value>Disk</value></member><member><name>userdevice</name><value>0</value></member><member><name>currently_attached</name><value><boolean>0</boolean>",
                         "<value>Ref:99</value></member><member><name>type</name><value>Disk</value></member><member><name>userdevice</name><value>0</value></member><member><name>currently_attached</name><value><boolean>1</boolean>"), "Attached_disks_not_found"),
            (hvm.replace("<value>2097152</value>", "<value>lots</value>"), "has no virtual_size"),
            ("<methodResponse/>".to_owned(), "not an XML-RPC value"),
        ];
        for (xml, expected) in cases {
            assert_ne!(xml, HVM, "{expected}: the fixture did not change");
            let message = format!("{:#}", parse_ova_xml(&xml).unwrap_err());
            assert!(message.contains(expected), "{expected}: {message}");
        }
        // Not attached, its disk missing: created without it, as xapi does.
        let detached = hvm.replace(
            "<value>Ref:9</value></member><member><name>type</name><value>Disk</value>",
            "<value>Ref:99</value></member><member><name>type</name><value>Disk</value>",
        );
        assert_eq!(parse_ova_xml(&detached).unwrap().disks.len(), 1);
    }
}
