// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeChart makes a chart directory from path -> content.
func writeChart(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const chartYaml = "apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: \"4.5\"\nkubeVersion: \">=1.26.0-0\"\n"

func renderDemo(t *testing.T, templates map[string]string, values string, overrides ...string) (*Output, error) {
	t.Helper()
	files := map[string]string{"Chart.yaml": chartYaml, "values.yaml": values, "files/a.txt": "file-a\n"}
	for name, content := range templates {
		files["templates/"+name] = content
	}
	dir := writeChart(t, files)
	var valueFiles []string
	for i, o := range overrides {
		p := filepath.Join(dir, "override"+string(rune('0'+i))+".yaml")
		if err := os.WriteFile(p, []byte(o), 0o644); err != nil {
			t.Fatal(err)
		}
		valueFiles = append(valueFiles, p)
	}
	return render(dir, valueFiles, "rel", "ns", "v1.29.0", false, defaultAPIVersions)
}

func object(t *testing.T, out *Output, template string) map[string]interface{} {
	t.Helper()
	for _, m := range out.Manifests {
		if m.Template == "demo/templates/"+template {
			return m.Object
		}
	}
	t.Fatalf("no manifest from %s in %+v", template, out.Manifests)
	return nil
}

func TestBuiltinsAndValues(t *testing.T) {
	tpl := map[string]string{
		"_helpers.tpl": `{{- define "demo.name" -}}{{ .Chart.Name }}-{{ .Release.Name }}{{- end -}}`,
		"cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "demo.name" . }}
  namespace: {{ .Release.Namespace }}
data:
  kind: {{ kindOf .Values.num | quote }}
  num: {{ .Values.num | quote }}
  gone: {{ hasKey .Values.m "drop" | quote }}
  kept: {{ .Values.m.keep | quote }}
  added: {{ .Values.m.add | quote }}
  list: {{ .Values.list | toJson | quote }}
  tpl: {{ tpl .Values.text . | quote }}
  file: {{ .Files.Get "files/a.txt" | quote }}
  missingFile: {{ .Files.Get "files/none" | quote }}
  lookup: {{ lookup "v1" "Secret" "ns" "x" | len | quote }}
  hasApps: {{ .Capabilities.APIVersions.Has "apps/v1" | quote }}
  hasMon: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  template: {{ .Template.Name | quote }}
  app: {{ .Chart.AppVersion | quote }}
  novalue: "{{ .Values.absent }}"
  yaml: {{ toYaml .Values.m | quote }}
`,
		"comments.yaml": "# only a comment\n---\n",
	}
	values := "num: 3\nm:\n  drop: 1\n  keep: a\nlist: [1, 2]\ntext: '{{ .Release.Name }}!'\n"
	out, err := renderDemo(t, tpl, values, "m:\n  drop: null\n  add: first\n", "m:\n  add: second\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Manifests) != 1 {
		t.Fatalf("comment-only documents must be skipped: %+v", out.Manifests)
	}
	data := object(t, out, "cm.yaml")["data"].(map[string]interface{})
	want := map[string]string{
		"kind": "float64", "num": "3", "gone": "false", "kept": "a", "added": "second",
		"list": "[1,2]", "tpl": "rel!", "file": "file-a\n", "missingFile": "", "lookup": "0",
		"hasApps": "true", "hasMon": "false", "kube": "v1.29.0",
		"template": "demo/templates/cm.yaml", "app": "4.5", "novalue": "", "yaml": "add: second\nkeep: a",
	}
	for k, v := range want {
		if data[k] != v {
			t.Errorf("data.%s = %q, want %q", k, data[k], v)
		}
	}
	if out.Values["num"] != float64(3) {
		t.Errorf("values.num = %#v, want float64 3", out.Values["num"])
	}
	if got := object(t, out, "cm.yaml")["metadata"].(map[string]interface{})["name"]; got != "demo-rel" {
		t.Errorf("include: name %v", got)
	}
}

func TestFailRequiredAndYAMLErrors(t *testing.T) {
	cases := []struct {
		name, template, values, want string
	}{
		{"fail", `{{ fail "nope: the reason" }}`, "", "execution error: nope: the reason"},
		{"required", `x: {{ required "x is required" .Values.x }}`, "x: ''", "x is required"},
		{"duplicate key", "a: 1\na: 2\n", "", "already"},
		{"int/float comparison", `{{ if gt .Values.num 1 }}x: 1{{ end }}`, "num: 2", "incompatible types"},
	}
	for _, c := range cases {
		_, err := renderDemo(t, map[string]string{"x.yaml": c.template}, c.values)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestKubeVersionConstraint(t *testing.T) {
	dir := writeChart(t, map[string]string{"Chart.yaml": chartYaml, "values.yaml": "", "templates/x.yaml": "a: 1\n"})
	if _, err := render(dir, nil, "r", "ns", "v1.25.3", false, defaultAPIVersions); err == nil ||
		!strings.Contains(err.Error(), "incompatible with Kubernetes v1.25.3") {
		t.Errorf("kubeVersion >=1.26 on 1.25: %v", err)
	}
}

// Helm reads values as YAML 1.1 (sigs.k8s.io/yaml): the key "on" is the boolean true.
func TestYAML11Keys(t *testing.T) {
	out, err := renderDemo(t, map[string]string{"x.yaml": "a: 1\n"}, "on: 1\nport: 0440\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := out.Values["true"]; !ok {
		t.Errorf("values %v: the key on should read as true", out.Values)
	}
	if out.Values["port"] != float64(288) {
		t.Errorf("0440 should be octal 288: %v", out.Values["port"])
	}
}
