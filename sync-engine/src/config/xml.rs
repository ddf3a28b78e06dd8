//! Reading the `<cluster>` block out of an ossec.conf text, the way upstream does.
//!
//! Upstream (3.9.5 `wazuh/utils.py` `load_wazuh_xml`, `wazuh/configuration.py` `get_ossec_conf`)
//! wraps the whole file in a synthetic root, keeps only the `<ossec_config>` roots, lower-cases
//! section and option names, and merges repeated `cluster` sections option by option (the later
//! value wins). Real files have several `<ossec_config>` roots, comments (sometimes with `--`
//! inside, which strict XML forbids) and stray `&`; the reader here accepts all of that instead of
//! rejecting a file upstream runs with. Only elements nested as
//! `ossec_config/cluster/<option>` (and `ossec_config/cluster/nodes/<any>`) are looked at.

use std::collections::BTreeMap;

use quick_xml::events::{BytesRef, Event};
use quick_xml::reader::Reader;

use super::OssecConfError;

/// The options of the merged `<cluster>` sections, as text, before any validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawCluster {
    /// Whether at least one `<cluster>` section was found.
    pub(crate) present: bool,
    /// Single-valued options by lower-cased name (trimmed text; `""` for an empty element).
    pub(crate) options: BTreeMap<String, String>,
    /// The children of the last `<nodes>` option, in order (trimmed text).
    pub(crate) nodes: Option<Vec<String>>,
}

/// Where the reader is in the element tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    /// An element we do not look inside (another section, another root, ...).
    Ignored,
    /// An `<ossec_config>` root.
    Root,
    /// A `<cluster>` section.
    Cluster,
    /// An option of the cluster section, collecting its text.
    Option(String),
    /// The `<nodes>` option.
    Nodes,
    /// One child of `<nodes>`, collecting its text.
    Node,
}

/// Extracts the merged `<cluster>` options from the text of an ossec.conf.
pub(crate) fn read_cluster(text: &str) -> Result<RawCluster, OssecConfError> {
    let mut reader = Reader::from_str(text);
    // Upstream escapes a stray `&` before parsing; a comment with `--` is accepted as is
    // (`check_comments` is off by default), and the end tag names must match (as ElementTree).
    reader.config_mut().allow_dangling_amp = true;

    let mut raw = RawCluster::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut value = String::new();
    let mut nodes: Vec<String> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|error| not_well_formed(text, reader.error_position(), &error.to_string()))?;
        match event {
            Event::Start(start) => {
                let frame = child_frame(stack.last(), &lower_name(start.name().as_ref()));
                enter(&frame, &mut raw, &mut value, &mut nodes);
                stack.push(frame);
            }
            Event::Empty(start) => {
                // `<key/>` is an option with empty text, `<nodes/>` an empty list.
                let frame = child_frame(stack.last(), &lower_name(start.name().as_ref()));
                enter(&frame, &mut raw, &mut value, &mut nodes);
                leave(frame, &mut raw, &value, &mut nodes);
            }
            Event::End(_) => {
                // quick-xml checked that the name matches the open element.
                if let Some(frame) = stack.pop() {
                    leave(frame, &mut raw, &value, &mut nodes);
                }
            }
            Event::Text(chunk) if collects_text(stack.last()) => {
                let chunk = chunk.xml_content().map_err(|error| {
                    not_well_formed(text, reader.buffer_position(), &error.to_string())
                })?;
                value.push_str(&chunk);
            }
            Event::CData(chunk) if collects_text(stack.last()) => {
                let chunk = chunk.decode().map_err(|error| {
                    not_well_formed(text, reader.buffer_position(), &error.to_string())
                })?;
                value.push_str(&chunk);
            }
            Event::GeneralRef(reference) if collects_text(stack.last()) => {
                push_reference(&reference, &mut value);
            }
            Event::Eof => break,
            // Comments, declarations, processing instructions, DOCTYPE, text elsewhere.
            _ => {}
        }
    }
    if let Some(open) = stack.len().checked_sub(1) {
        return Err(not_well_formed(
            text,
            text.len() as u64,
            &format!("{} element(s) not closed", open + 1),
        ));
    }
    Ok(raw)
}

/// The frame for a child element named `name` (lower-cased) of `parent`.
fn child_frame(parent: Option<&Frame>, name: &str) -> Frame {
    match (parent, name) {
        (None, "ossec_config") => Frame::Root,
        (Some(Frame::Root), "cluster") => Frame::Cluster,
        (Some(Frame::Cluster), "nodes") => Frame::Nodes,
        (Some(Frame::Cluster), option) => Frame::Option(option.to_owned()),
        // Upstream takes the text of every child of <nodes>, whatever its tag.
        (Some(Frame::Nodes), _) => Frame::Node,
        _ => Frame::Ignored,
    }
}

/// Whether text at this point belongs to a value (an option's or a node's own text).
fn collects_text(frame: Option<&Frame>) -> bool {
    matches!(frame, Some(Frame::Option(_) | Frame::Node))
}

fn enter(frame: &Frame, raw: &mut RawCluster, value: &mut String, nodes: &mut Vec<String>) {
    match frame {
        Frame::Cluster => raw.present = true,
        Frame::Option(_) | Frame::Node => value.clear(),
        Frame::Nodes => nodes.clear(),
        Frame::Ignored | Frame::Root => {}
    }
}

fn leave(frame: Frame, raw: &mut RawCluster, value: &str, nodes: &mut Vec<String>) {
    match frame {
        // A repeated option (or a later <cluster> section) overrides the earlier value.
        Frame::Option(name) => {
            raw.options.insert(name, value.trim().to_owned());
        }
        Frame::Node => nodes.push(value.trim().to_owned()),
        Frame::Nodes => raw.nodes = Some(std::mem::take(nodes)),
        Frame::Ignored | Frame::Root | Frame::Cluster => {}
    }
}

/// Appends the text a `&...;` reference stands for: the five predefined entities and character
/// references; anything else (upstream's own `&backslash;`, unknown entities) is kept literally.
fn push_reference(reference: &BytesRef<'_>, value: &mut String) {
    if let Ok(Some(c)) = reference.resolve_char_ref() {
        value.push(c);
        return;
    }
    let name = String::from_utf8_lossy(reference);
    match name.as_ref() {
        "lt" => value.push('<'),
        "gt" => value.push('>'),
        "amp" => value.push('&'),
        "apos" => value.push('\''),
        "quot" => value.push('"'),
        other => {
            value.push('&');
            value.push_str(other);
            value.push(';');
        }
    }
}

/// Upstream lower-cases section and option names (`section.tag.lower()`).
fn lower_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name).to_lowercase()
}

fn not_well_formed(text: &str, position: u64, message: &str) -> OssecConfError {
    let end = usize::try_from(position).map_or(text.len(), |p| p.min(text.len()));
    let line = text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1;
    OssecConfError::NotWellFormed {
        line,
        message: message.to_owned(),
    }
}
