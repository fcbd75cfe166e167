"""Table and plot nodes from columns of numbers and text."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from learnreg.slicer._mrml import vtk


def fill_table(table_node, columns: dict[str, Sequence]) -> None:
    """Replace the table's content with ``columns`` (name -> values); text columns stay text."""
    table = table_node.GetTable()
    table.Initialize()
    for name, values in columns.items():
        values = list(values)
        if values and isinstance(values[0], str):
            array = vtk.vtkStringArray()
            for v in values:
                array.InsertNextValue(v)
        else:
            array = vtk.vtkDoubleArray()
            for v in np.asarray(values, dtype=float):
                array.InsertNextValue(float(v))
        array.SetName(name)
        table.AddColumn(array)
    table_node.Modified()


def table_column(table_node, name: str) -> list:
    """A column of a table node as a list (floats or strings)."""
    array = table_node.GetTable().GetColumnByName(name)
    if array is None:
        raise KeyError(f"table '{table_node.GetName()}' has no column {name!r}")
    return [array.GetValue(i) for i in range(array.GetNumberOfValues())]


def add_table_node(scene, name: str, columns: dict[str, Sequence]):
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    fill_table(node, columns)
    return node


def add_bar_chart(scene, table_node, name: str, x_column: str, y_columns: dict[str, str], label_column: str,
                  x_title: str, y_title: str):
    """A plot chart of bar series (legend name -> column) against ``x_column``, bars labelled by ``label_column``."""
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(name))
    chart.SetTitle(name)
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    colours = [(0.6, 0.6, 0.6), (0.85, 0.33, 0.1), (0.0, 0.45, 0.7)]
    for index, (legend, column) in enumerate(y_columns.items()):
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", scene.GenerateUniqueName(f"{name} {legend}"))
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetXColumnName(x_column)
        series.SetYColumnName(column)
        series.SetLabelColumnName(label_column)
        series.SetPlotType(series.PlotTypeBar)
        series.SetColor(*colours[index % len(colours)])
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return chart
