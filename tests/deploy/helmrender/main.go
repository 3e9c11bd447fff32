// SPDX-License-Identifier: Apache-2.0

// helmrender renders a Helm chart the way `helm template` does, for tests on a machine without
// helm or a cluster: Go's text/template with sprig's functions plus the Helm built-ins (include,
// tpl, required, toYaml, fromYaml, toJson, fromJson, lookup (answering nothing, or from the
// objects of -cluster, as a cluster would on `helm upgrade`), .Release, .Chart,
// .Values, .Capabilities, .Files, .Template). Values are read as Helm reads them (YAML 1.1
// through JSON, so numbers are float64) and coalesced like Helm's: later -f files win, maps merge,
// null deletes a chart default.
//
//	helmrender -chart DIR [-f values.yaml]... [-release NAME] [-namespace NS] [-kube-version v1.29.0]
//	           [-upgrade] [-cluster objects.json]
//
// Prints JSON: {"values": merged values, "manifests": [{"template", "object"}], "notes": "..."}.
// On an error (a template's `fail` or `required`, bad YAML) it prints the error and exits 1.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	semver "github.com/Masterminds/semver"
	sprig "github.com/Masterminds/sprig"
	yaml "gopkg.in/yaml.v2"
)

// ChartMetadata holds the Chart.yaml fields templates read as .Chart.X.
type ChartMetadata struct {
	APIVersion  string            `yaml:"apiVersion"`
	Name        string            `yaml:"name"`
	Version     string            `yaml:"version"`
	AppVersion  string            `yaml:"appVersion"`
	KubeVersion string            `yaml:"kubeVersion"`
	Description string            `yaml:"description"`
	Type        string            `yaml:"type"`
	Home        string            `yaml:"home"`
	Icon        string            `yaml:"icon"`
	Keywords    []string          `yaml:"keywords"`
	Sources     []string          `yaml:"sources"`
	Annotations map[string]string `yaml:"annotations"`
	Deprecated  bool              `yaml:"deprecated"`
}

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

// Has tells whether an API version ("apps/v1") or version/kind ("apps/v1/Deployment") is served.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// KubeVersion is .Capabilities.KubeVersion.
type KubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string
}

func (k KubeVersion) String() string { return k.Version }

// Capabilities is .Capabilities.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

// Files is .Files: the chart's files outside templates/.
type Files map[string][]byte

// Get returns a file's content, or "" when the chart has no such file (as Helm does).
func (f Files) Get(name string) string { return string(f[name]) }

// GetBytes returns a file's content as bytes.
func (f Files) GetBytes(name string) []byte { return f[name] }

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// defaultAPIVersions are the built-in groups of a current cluster (no CRDs).
var defaultAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
	"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
	"apiextensions.k8s.io/v1", "admissionregistration.k8s.io/v1", "coordination.k8s.io/v1",
}

func main() {
	chartDir := flag.String("chart", "", "chart directory")
	release := flag.String("release", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "v1.29.0", "Kubernetes version of .Capabilities")
	upgrade := flag.Bool("upgrade", false, ".Release.IsUpgrade instead of IsInstall")
	raw := flag.Bool("raw", false, "print the rendered text like `helm template` instead of JSON")
	cluster := flag.String("cluster", "", "JSON list of objects that lookup finds (default: none)")
	var valueFiles, apiVersions multiFlag
	flag.Var(&valueFiles, "f", "values file (repeatable; later ones win)")
	flag.Var(&apiVersions, "api-versions", "extra API versions for .Capabilities.APIVersions (repeatable)")
	flag.Parse()
	if *chartDir == "" {
		fmt.Fprintln(os.Stderr, "helmrender: -chart is required")
		os.Exit(2)
	}
	if *cluster != "" {
		data, err := os.ReadFile(*cluster)
		if err == nil {
			err = json.Unmarshal(data, &clusterObjects)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "helmrender: -cluster:", err)
			os.Exit(2)
		}
	}
	out, err := render(*chartDir, valueFiles, *release, *namespace, *kubeVersion, *upgrade,
		append(append([]string{}, defaultAPIVersions...), apiVersions...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helmrender:", err)
		os.Exit(1)
	}
	if *raw {
		for _, r := range out.raw {
			fmt.Printf("---\n# Source: %s\n%s\n", r.name, strings.TrimSpace(r.text))
		}
		return
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "helmrender:", err)
		os.Exit(1)
	}
}

// Manifest is one rendered Kubernetes object and the template it came from.
type Manifest struct {
	Template string                 `json:"template"`
	Object   map[string]interface{} `json:"object"`
}

// Output is what main prints.
type Output struct {
	Values    map[string]interface{} `json:"values"`
	Manifests []Manifest             `json:"manifests"`
	Notes     string                 `json:"notes"`
	raw       []rawTemplate
}

type rawTemplate struct{ name, text string }

func render(chartDir string, valueFiles []string, release, namespace, kubeVersion string,
	upgrade bool, apiVersions []string) (*Output, error) {
	var meta ChartMetadata
	chartYaml, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(chartYaml, &meta); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	if meta.APIVersion != "v2" || meta.Name == "" || meta.Version == "" {
		return nil, errors.New("Chart.yaml: apiVersion v2, name and version are required")
	}
	if _, err := semver.StrictNewVersion(meta.Version); err != nil {
		return nil, fmt.Errorf("Chart.yaml: version %q is not SemVer 2: %w", meta.Version, err)
	}
	kv, err := semver.NewVersion(kubeVersion)
	if err != nil {
		return nil, fmt.Errorf("-kube-version: %w", err)
	}
	if meta.KubeVersion != "" {
		c, err := semver.NewConstraint(meta.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("Chart.yaml: kubeVersion: %w", err)
		}
		if !c.Check(kv) {
			return nil, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s",
				meta.KubeVersion, kubeVersion)
		}
	}

	defaults, err := readValuesFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	user := map[string]interface{}{}
	for _, f := range valueFiles {
		v, err := readValuesFile(f)
		if err != nil {
			return nil, err
		}
		user = mergeMaps(user, v)
	}
	values := coalesce(user, defaults)

	templates, files, err := loadChart(chartDir, meta.Name)
	if err != nil {
		return nil, err
	}
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "Service": "Helm",
			"IsInstall": !upgrade, "IsUpgrade": upgrade, "Revision": 1,
		},
		"Chart": meta,
		"Capabilities": Capabilities{
			KubeVersion: KubeVersion{
				Version: "v" + kv.String(), GitVersion: "v" + kv.String(),
				Major: fmt.Sprint(kv.Major()), Minor: fmt.Sprint(kv.Minor()),
			},
			APIVersions: VersionSet(apiVersions),
			HelmVersion: map[string]string{"Version": "v3.14.0"},
		},
		"Files": files,
	}
	rendered, err := renderTemplates(templates, top, meta.Name)
	if err != nil {
		return nil, err
	}

	out := &Output{Values: values, Manifests: []Manifest{}}
	names := make([]string, 0, len(rendered))
	for name := range rendered {
		names = append(names, name)
	}
	sort.Strings(names)
	docSeparator := regexp.MustCompile(`(?m)^---[ \t]*$`)
	for _, name := range names {
		out.raw = append(out.raw, rawTemplate{name, rendered[name]})
		if path.Base(name) == "NOTES.txt" {
			out.Notes = rendered[name]
			continue
		}
		for i, doc := range docSeparator.Split(rendered[name], -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var raw interface{}
			if err := yaml.UnmarshalStrict([]byte(doc), &raw); err != nil {
				return nil, fmt.Errorf("%s (document %d): YAML: %w\n%s", name, i, err, numbered(doc))
			}
			if raw == nil { // comments only
				continue
			}
			obj, ok := jsonCompatible(raw).(map[string]interface{})
			if !ok {
				return nil, fmt.Errorf("%s (document %d): not a mapping", name, i)
			}
			out.Manifests = append(out.Manifests, Manifest{Template: name, Object: obj})
		}
	}
	return out, nil
}

func numbered(s string) string {
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		fmt.Fprintf(&b, "%4d | %s\n", i+1, line)
	}
	return b.String()
}

// loadChart returns the templates (by Helm's name "chart/templates/x.yaml") and .Files.
func loadChart(chartDir, chartName string) (map[string]string, Files, error) {
	ignore := []string{".helmignore"}
	if data, err := os.ReadFile(filepath.Join(chartDir, ".helmignore")); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				ignore = append(ignore, line)
			}
		}
	}
	ignored := func(rel string) bool {
		for _, pattern := range ignore {
			if ok, _ := filepath.Match(pattern, rel); ok {
				return true
			}
			if ok, _ := filepath.Match(pattern, filepath.Base(rel)); ok {
				return true
			}
		}
		return false
	}
	templates := map[string]string{}
	files := Files{}
	err := filepath.Walk(chartDir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(chartDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ignored(rel) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			templates[chartName+"/"+rel] = string(data)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" ||
			strings.HasPrefix(rel, "charts/"):
		default:
			files[rel] = data
		}
		return nil
	})
	return templates, files, err
}

// renderTemplates is Helm's engine: one template set holding every file, each non-partial file
// executed with its own .Template, "<no value>" removed.
func renderTemplates(sources map[string]string, top map[string]interface{}, chartName string) (map[string]string, error) {
	root := template.New("gotpl").Option("missingkey=zero")
	funcs := funcMap(root)
	root.Funcs(funcs)
	names := make([]string, 0, len(sources))
	for name := range sources {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := root.New(name).Parse(sources[name]); err != nil {
			return nil, err
		}
	}
	rendered := map[string]string{}
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		vals := map[string]interface{}{}
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]interface{}{"Name": name, "BasePath": chartName + "/templates"}
		var buf strings.Builder
		if err := root.ExecuteTemplate(&buf, name, vals); err != nil {
			return nil, execError(err)
		}
		rendered[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return rendered, nil
}

// execError keeps the message of the innermost `fail`/`required` visible, as Helm's
// "execution error at (file:line:col): message".
func execError(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "error calling "); i >= 0 {
		rest := msg[i+len("error calling "):]
		if j := strings.Index(rest, ": "); j >= 0 {
			return fmt.Errorf("execution error: %s\n(%s)", rest[j+2:], msg)
		}
	}
	return err
}

// clusterObjects are what lookup finds: none (as `helm template`), or those of -cluster.
var clusterObjects []map[string]interface{}

// lookup is Helm's: the object named, or {} when there is none; with an empty name, a list
// {"items": [...]} of the kind in the namespace (every namespace when that is empty too).
func lookup(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
	var items []interface{}
	for _, o := range clusterObjects {
		meta, _ := o["metadata"].(map[string]interface{})
		if o["apiVersion"] != apiVersion || o["kind"] != kind || meta == nil {
			continue
		}
		if namespace != "" && meta["namespace"] != namespace {
			continue
		}
		if name == "" {
			items = append(items, o)
		} else if meta["name"] == name {
			return o, nil
		}
	}
	if name == "" {
		return map[string]interface{}{"items": items}, nil
	}
	return map[string]interface{}{}, nil
}

func funcMap(root *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	includeDepth := map[string]int{}
	f["include"] = func(name string, data interface{}) (string, error) {
		if includeDepth[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		includeDepth[name]++
		defer func() { includeDepth[name]-- }()
		var buf strings.Builder
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf strings.Builder
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	f["required"] = func(warn string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(warn)
		}
		if s, ok := val.(string); ok && s == "" {
			return val, errors.New(warn)
		}
		return val, nil
	}
	f["lookup"] = lookup
	f["toYaml"] = func(v interface{}) string {
		s, err := toYAML(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(s, "\n")
	}
	f["fromYaml"] = func(s string) map[string]interface{} {
		var raw interface{}
		if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		m, ok := jsonCompatible(raw).(map[string]interface{})
		if !ok {
			return map[string]interface{}{}
		}
		return m
	}
	f["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromJsonArray"] = func(s string) []interface{} {
		var a []interface{}
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			return []interface{}{err.Error()}
		}
		return a
	}
	return f
}

// toYAML is sigs.k8s.io/yaml's Marshal (Helm's toYaml): through JSON, keys sorted.
func toYAML(v interface{}) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var ordered yaml.MapSlice
	var generic interface{}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		if err := yaml.Unmarshal(data, &ordered); err != nil {
			return "", err
		}
		generic = ordered
	} else if err := yaml.Unmarshal(data, &generic); err != nil {
		return "", err
	}
	out, err := yaml.Marshal(generic)
	return string(out), err
}

// readValuesFile reads values as Helm does: YAML, then JSON (numbers become float64).
func readValuesFile(name string) (map[string]interface{}, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var raw interface{}
	if err := yaml.UnmarshalStrict(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	js, err := json.Marshal(jsonCompatible(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out := map[string]interface{}{}
	if err := json.Unmarshal(js, &out); err != nil {
		return nil, fmt.Errorf("%s: not a mapping: %w", name, err)
	}
	return out, nil
}

// jsonCompatible turns yaml.v2's map[interface{}]interface{} into map[string]interface{}.
func jsonCompatible(v interface{}) interface{} {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			m[fmt.Sprint(k)] = jsonCompatible(val)
		}
		return m
	case []interface{}:
		for i := range t {
			t[i] = jsonCompatible(t[i])
		}
		return t
	default:
		return v
	}
}

// mergeMaps merges values files: b wins, maps merge recursively (Helm's -f handling).
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if om, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeMaps(om, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// coalesce applies the chart's defaults under the user's values (Helm's CoalesceValues): the
// user's value wins, maps merge, and a user's null removes the default.
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(user))
	for k, v := range user {
		out[k] = v
	}
	for k, dv := range defaults {
		uv, present := out[k]
		switch {
		case !present:
			out[k] = dv
		case uv == nil:
			delete(out, k)
		default:
			um, uok := uv.(map[string]interface{})
			dm, dok := dv.(map[string]interface{})
			if uok && dok {
				out[k] = coalesce(um, dm)
			}
		}
	}
	return out
}
