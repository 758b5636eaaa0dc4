package schemas

import (
	"fmt"
	"reflect"
	"time"
)

// The generic path (see doc.go; the typed path, typed.go, needs none of
// this): the Go events and goavro's generic ("native") values are converted
// into each other field by field, by the `avro` tags. Supported Go field types:
// string, bool, int32, int64, float64, []byte, time.Time (timestamp-millis),
// nested structs (records), slices (arrays), and pointers to a primitive
// (a ["null", T] union). Anything else is a programming error reported at
// the first conversion, and caught by the catalog's round-trip test.

var timeType = reflect.TypeOf(time.Time{})

func toNative(ev Event) (map[string]any, error) {
	v := reflect.ValueOf(ev)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	out, err := valueToNative(v)
	if err != nil {
		return nil, err
	}
	m, ok := out.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("event %T is not a struct", ev)
	}
	return m, nil
}

func valueToNative(v reflect.Value) (any, error) {
	switch {
	case v.Type() == timeType:
		return v.Interface().(time.Time), nil
	case v.Kind() == reflect.Struct:
		m := make(map[string]any, v.NumField())
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name := f.Tag.Get("avro")
			if name == "" {
				continue
			}
			fv, err := valueToNative(v.Field(i))
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", name, err)
			}
			m[name] = fv
		}
		return m, nil
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			return nil, nil
		}
		branch, err := avroPrimitive(v.Type().Elem())
		if err != nil {
			return nil, err
		}
		inner, err := valueToNative(v.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{branch: inner}, nil
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		return v.Bytes(), nil
	case v.Kind() == reflect.Slice:
		out := make([]any, v.Len())
		for i := range v.Len() {
			e, err := valueToNative(v.Index(i))
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out[i] = e
		}
		return out, nil
	}
	switch v.Kind() {
	case reflect.String:
		return v.String(), nil
	case reflect.Bool:
		return v.Bool(), nil
	case reflect.Int32:
		return int32(v.Int()), nil
	case reflect.Int64:
		return v.Int(), nil
	case reflect.Float64:
		return v.Float(), nil
	}
	return nil, fmt.Errorf("unsupported Go type %s", v.Type())
}

func avroPrimitive(t reflect.Type) (string, error) {
	switch t.Kind() {
	case reflect.String:
		return "string", nil
	case reflect.Bool:
		return "boolean", nil
	case reflect.Int32:
		return "int", nil
	case reflect.Int64:
		return "long", nil
	case reflect.Float64:
		return "double", nil
	}
	return "", fmt.Errorf("unsupported union branch %s", t)
}

func fromNative(native map[string]any, ptr Event) error {
	return nativeToValue(native, reflect.ValueOf(ptr).Elem())
}

func nativeToValue(n any, v reflect.Value) error {
	switch {
	case v.Type() == timeType:
		t, ok := n.(time.Time)
		if !ok {
			return fmt.Errorf("want a timestamp, got %T", n)
		}
		v.Set(reflect.ValueOf(t.UTC()))
		return nil
	case v.Kind() == reflect.Struct:
		m, ok := n.(map[string]any)
		if !ok {
			return fmt.Errorf("want a record, got %T", n)
		}
		for i := range v.NumField() {
			name := v.Type().Field(i).Tag.Get("avro")
			if name == "" {
				continue
			}
			fn, present := m[name]
			if !present {
				return fmt.Errorf("field %s is missing", name)
			}
			if err := nativeToValue(fn, v.Field(i)); err != nil {
				return fmt.Errorf("field %s: %w", name, err)
			}
		}
		return nil
	case v.Kind() == reflect.Pointer:
		if n == nil {
			v.SetZero()
			return nil
		}
		m, ok := n.(map[string]any)
		if !ok || len(m) != 1 {
			return fmt.Errorf("want a union value, got %T", n)
		}
		for _, inner := range m {
			p := reflect.New(v.Type().Elem())
			if err := nativeToValue(inner, p.Elem()); err != nil {
				return err
			}
			v.Set(p)
		}
		return nil
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		b, ok := n.([]byte)
		if !ok {
			return fmt.Errorf("want bytes, got %T", n)
		}
		v.SetBytes(b)
		return nil
	case v.Kind() == reflect.Slice:
		items, ok := n.([]any)
		if !ok {
			return fmt.Errorf("want an array, got %T", n)
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, it := range items {
			if err := nativeToValue(it, s.Index(i)); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		v.Set(s)
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		s, ok := n.(string)
		if !ok {
			return fmt.Errorf("want a string, got %T", n)
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		b, ok := n.(bool)
		if !ok {
			return fmt.Errorf("want a boolean, got %T", n)
		}
		v.SetBool(b)
		return nil
	case reflect.Int32, reflect.Int64:
		switch i := n.(type) {
		case int32:
			v.SetInt(int64(i))
		case int64:
			if v.OverflowInt(i) {
				return fmt.Errorf("%d overflows %s", i, v.Type())
			}
			v.SetInt(i)
		case int:
			v.SetInt(int64(i))
		default:
			return fmt.Errorf("want an integer, got %T", n)
		}
		return nil
	case reflect.Float64:
		f, ok := n.(float64)
		if !ok {
			return fmt.Errorf("want a double, got %T", n)
		}
		v.SetFloat(f)
		return nil
	}
	return fmt.Errorf("unsupported Go type %s", v.Type())
}

func derefEvent(ev Event) Event {
	return reflect.ValueOf(ev).Elem().Interface().(Event)
}
