"""Instance outlines for other tools: ImageJ/Fiji ROI sets (:mod:`.imagej`) and QuPath GeoJSON
(:mod:`.geojson`), traced exactly along pixel edges (:mod:`.contours`) from predictions or ground truth
(:mod:`.records`). Depends on numpy, contourpy, roifile and ``gains.gamm``, never on torch;
``gains.inference`` and the CLI use it, ``gains.data``, ``models`` and ``engine`` never import it."""
